"""Select a native module or its pure-Python twin.

Reads the environment variable POSTIER_PURE: "1" (or "yes"/"true") selects the
twins in postier._pure even when the compiled modules are present.  When a
compiled module is missing (no build step was run), the twin is used and
`is_native(name)` says so.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def pure_requested() -> bool:
    return os.environ.get("POSTIER_PURE", "").strip().lower() in ("1", "yes", "true", "on")


def load(name: str, *, pure: bool | None = None) -> ModuleType:
    """Return postier._native.NAME, or postier._pure.NAME when pure is asked for
    (argument, else POSTIER_PURE) or the native build is missing."""
    if pure is None:
        pure = pure_requested()
    if not pure:
        try:
            return importlib.import_module(f"postier._native.{name}")
        except ImportError:
            pass
    return importlib.import_module(f"postier._pure.{name}")


def is_native(name: str) -> bool:
    return load(name).__name__.startswith("postier._native.")
