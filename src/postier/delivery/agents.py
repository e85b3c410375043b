"""Import every delivery agent module so that each registers itself in AGENTS.

    import postier.delivery.agents
    from postier.delivery import AGENTS
    statuses = await AGENTS["smtp"](request)

Registered here: smtp and lmtp (postier.delivery.smtp), error (also serving
the `retry` service), discard; and local, virtual and pipe when their modules
exist (they are written separately; a missing one is skipped, any other
import error propagates).

Parameters read: none (each agent documents its own).
"""

from __future__ import annotations

import importlib

from postier.delivery import AGENTS
from postier.delivery import discard as _discard  # noqa: F401
from postier.delivery import error as _error  # noqa: F401
from postier.delivery import smtp as _smtp  # noqa: F401

__all__ = ["AGENTS", "OPTIONAL_MODULES", "loaded"]

OPTIONAL_MODULES = ("postier.delivery.local", "postier.delivery.virtual", "postier.delivery.pipe")
loaded: list[str] = ["postier.delivery.smtp", "postier.delivery.error", "postier.delivery.discard"]

for _name in OPTIONAL_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _e:
        if _e.name != _name:
            raise
    else:
        loaded.append(_name)
