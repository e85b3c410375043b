"""Import, in the master, what the children would import later.

Two reasons.  Memory: code imported before the fork is shared by every
child (copy-on-write pages; the master also freezes the garbage collector's
view of it).  Privileges: a child that switched to $mail_owner may not be
able to read the Python installation any more (an interpreter installed
under a 0700 home directory, e.g. pyenv in /root), and many modules import
parts of the standard library lazily, inside functions (the default thread
pool of `run_in_executor`, the IDNA codec, email header parsing, archive
decompressors for the banned-file checks, ...).  Everything here is in
sys.modules before the fork, so such imports cannot fail afterwards.

`preload()` imports every postier module (except the command-line front
ends and the benchmark tool) and the standard-library and third-party
modules of LAZY; a module that does not import (an optional dependency) is
skipped silently.

Parameters read: none.
"""

from __future__ import annotations

import importlib
import pkgutil

LAZY = (
    # imported inside functions by postier, its dependencies or the stdlib itself
    "concurrent.futures.thread", "concurrent.futures.process", "multiprocessing",
    "encodings.idna", "encodings.punycode", "encodings.ascii", "encodings.latin_1",
    "encodings.utf_8", "encodings.utf_16", "encodings.cp1252", "encodings.iso8859_15",
    "stringprep", "unicodedata", "codecs",
    "traceback", "linecache", "tokenize", "tempfile", "shutil", "subprocess", "resource",
    "pwd", "grp", "ctypes", "ctypes.util", "_strptime", "calendar", "datetime", "locale",
    "email", "email.parser", "email.feedparser", "email.policy", "email.message",
    "email.utils", "email.header", "email.headerregistry", "email.generator",
    "email.charset", "email.encoders", "email.base64mime", "email.quoprimime",
    "email.iterators", "email._header_value_parser", "email._policybase", "email.errors",
    "email.contentmanager", "email.mime.text", "email.mime.multipart",
    "email.mime.message", "email.mime.base",
    "quopri", "base64", "binascii", "uuid", "json", "hmac", "hashlib", "secrets", "random",
    "zipfile", "tarfile", "gzip", "bz2", "lzma", "zlib", "mimetypes", "syslog", "glob",
    "fnmatch", "shlex", "textwrap", "string", "struct", "ipaddress", "selectors", "ssl",
    "socket", "signal", "fcntl", "errno", "stat", "itertools", "functools", "heapq",
    "bisect", "decimal", "fractions", "statistics", "html", "html.parser", "urllib.parse",
    "http.client", "asyncio.subprocess", "asyncio.unix_events", "asyncio.sslproto",
    # third party
    "uvloop", "aiosmtpd.smtp", "aiodns", "pycares", "hyperscan", "re2", "msgspec",
    "msgspec.json", "msgspec.msgpack", "redis", "redis.asyncio", "redis.exceptions",
)

SKIP_PREFIXES = ("postier.cli", "postier.bench")


def preload() -> int:
    """Import LAZY and every postier module; the number of modules imported."""
    n = 0
    for name in LAZY:
        try:
            importlib.import_module(name)
            n += 1
        except Exception:   # noqa: BLE001 - optional: absent or broken here
            pass
    try:
        "postier.test".encode("idna")        # registers the codec's search result
    except Exception:   # noqa: BLE001
        pass
    import postier
    for m in pkgutil.walk_packages(postier.__path__, "postier."):
        if m.name.startswith(SKIP_PREFIXES):
            continue
        try:
            importlib.import_module(m.name)
            n += 1
        except Exception:   # noqa: BLE001 - a module that cannot import is not used either
            pass
    try:
        import mimetypes
        mimetypes.init()
    except Exception:   # noqa: BLE001
        pass
    return n
