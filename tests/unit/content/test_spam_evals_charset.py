"""check_for_uppercase's charset of a Content-Type value (evals._charset_from_ct,
remembered by value): SpamAssassin's three patterns tried in order --
charset="...", charset='...', charset=\\S+ -- case-insensitively."""

from __future__ import annotations

import pytest

from postier.content.spam import evals


@pytest.mark.parametrize("value,charset", [
    (None, None),
    ("text/plain", None),
    ('text/plain; charset="utf-8"', "utf-8"),
    ("text/plain; CHARSET='iso 2022'", "iso 2022"),
    ("text/plain; charset=koi8-r; format=flowed", "koi8-r;"),      # \S+ takes the ;
    ('text/plain; charset=x; foo=1; charset="y"', "y"),            # the quoted form first
    ("text/plain; charset=", None),
])
def test_charset_from_content_type(value, charset):
    for _ in range(2):              # (the second time: the remembered answer)
        assert evals._charset_from_ct(value) == charset


def test_long_values_are_answered_but_not_remembered():
    value = "text/plain; charset=big5; x=" + "a" * 300
    evals._CT_CHARSETS.clear()
    assert evals._charset_from_ct(value) == "big5;"
    assert value not in evals._CT_CHARSETS
    assert evals._charset_from_ct("text/plain; charset=big5") == "big5"
    assert evals._CT_CHARSETS["text/plain; charset=big5"] == "big5"
