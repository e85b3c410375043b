"""tools/nsd_server.py, imported by path under its own module name.

tests/integration/delivery has an older module also called `nsd_server`;
whichever is imported first would shadow the other on sys.path, so the DNS
tests load the shared tools/ version as `postier_tools_nsd_server`.
"""

from __future__ import annotations

import importlib.util
import os
import sys

_NAME = "postier_tools_nsd_server"
_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "tools", "nsd_server.py")

_mod = sys.modules.get(_NAME)
if _mod is None:
    _spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)

NsdServer = _mod.NsdServer
SplitProxy = _mod.SplitProxy
Blackhole = _mod.Blackhole
nsd_available = _mod.nsd_available
query = _mod.query
