"""What `postmap -q` says about a lookup result, shared by every table type.

Postfix's postmap/postalias warn when a table returns an empty string (a
table should return nothing at all for "not found"):

    table regexp:/etc/postfix/t: key empty-result: empty string result is not allowed
    table regexp:/etc/postfix/t should return NO RESULT in case of NOT FOUND

check_result() emits those two warnings through the caller's `warn`
callback (which adds the `postmap: warning: ` prefix) and returns the value
unchanged, so a lookup can end with `return check_result(...)`.

Parameters read: none.
"""

from __future__ import annotations

from collections.abc import Callable


def check_result(map_type: str, map_name: str, key: str, value: str | None,
                 warn: Callable[[str], None]) -> str | None:
    """Warn (Postfix's wording) when value is the empty string; return value."""
    if value is not None and value == "":
        warn(f"table {map_type}:{map_name}: key {key}: empty string result is not allowed")
        warn(f"table {map_type}:{map_name} should return NO RESULT in case of NOT FOUND")
    return value
