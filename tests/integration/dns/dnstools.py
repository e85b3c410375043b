"""tools/nsd_server.py (and tools/peer_process.py, which it imports): the
tools directory is put on sys.path."""

from __future__ import annotations

import os
import sys

_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))), "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)

from nsd_server import Blackhole, NsdServer, SplitProxy, nsd_available, query  # noqa: E402

__all__ = ["Blackhole", "NsdServer", "SplitProxy", "nsd_available", "query"]
