"""`postier map`: build and query lookup tables, like Postfix's postmap(1).

    postier map [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [type:]file...

Same options, output, exit codes and stderr wording as postmap 3.7 (the
stderr prefix is `postmap:`):

* `postier map [-f] hash:FILE` (or a bare FILE: default_database_type,
  hash) builds FILE.db from the source FILE (see postier.maps.source);
  other types cannot be built (`unsupported dictionary type: regexp does
  not support bulk-mode creation.`).
* `-q KEY` prints the first value found in the listed tables (exit 0) or
  exits 1; `-q -` reads keys from stdin and prints `key<TAB>value` for each
  one found (exit 0 when at least one was found).
* `-s` prints every entry of the first table (hash, texthash, or any table
  object with .items()); `-d KEY` / `-d -` delete from hash tables; `-i`
  adds `key value` lines from stdin (rebuilding the file atomically).
* `-f` no case folding (build and query); `-r`/`-w` replace/ignore
  duplicates silently (default: warn, first wins); `-u` no UTF-8 checks;
  `-F` values are files, stored base64-encoded; `-h`/`-b` with `-q -`
  query the header lines / body lines of a message on stdin (no MIME
  parsing: `-m` is refused); `-o`/`-p` as postmap (owner, permissions of
  new tables); `-n`/`-N`/`-v`/`-U` are accepted and change nothing.
* Every table type is opened through postier.maps.open_map; table warnings
  print as `postmap: warning: ...`, errors as `postmap: fatal: ...` (exit 1).

Parameters read (from CONFIG_DIR/main.cf when -c or $MAIL_CONFIG names a
directory, literal values only): default_database_type, smtputf8_enable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from postier.maps import Map

from postier import log
from postier.errors import PostierError

PROG = "postmap"
OPTSPEC = "bc:d:fFhimnNopq:rsuUvw"
USAGE = ("usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] "
         "[map_type:]file...")
HELP = f"""{USAGE}

Build and query lookup tables, like Postfix's postmap(1).

  postier map [-f] hash:FILE       build FILE.db from FILE
  postier map -q KEY TYPE:NAME...  print the value of KEY (exit 1: not found)
  postier map -q - TYPE:NAME...    look up keys from stdin, print key<TAB>value
  postier map -s TYPE:NAME         print all entries
  postier map -d KEY hash:FILE     delete KEY (-d -: keys from stdin)
  postier map -i hash:FILE         add "key value" lines from stdin

  -f  do not fold keys to lower case      -r/-w  replace/ignore duplicates
  -u  no UTF-8 checks    -F  values are file names (stored base64-encoded)
  -h/-b  with "-q -": query header/body lines of a message on stdin
  -c DIR  read DIR/main.cf    -o/-p  owner/permission handling as postmap
"""

# Types postmap can write.
BUILDABLE = ("hash",)


class Fatal(Exception):
    """A postmap-style fatal error (printed as `PROG: fatal: text`)."""


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.config_dir: str | None = None
        self.delkey: str | None = None
        self.query: str | None = None
        self.sequence = False
        self.update = False
        self.fold = True
        self.rhs_is_file = False
        self.header_key = False
        self.body_key = False
        self.mime_key = False
        self.as_owner = True
        self.save_perm = True
        self.dup = "warn"
        self.utf8 = True
        self.force_utf8 = False
        self.verbose = 0
        self.maps: list[str] = []
        self.db_type = "hash"
        self.myhostname: str | None = None
        self.sep = b"\t"          # -q - / -s output separator (postalias: ":\t")


def getopt(argv: list[str], spec: str, prog: str, usage: str
           ) -> tuple[list[tuple[str, str | None]], list[str]]:
    """POSIX getopt ("+" mode, as Postfix's GETOPT on Linux): options stop at
    the first non-option argument.  glibc's messages, then the usage fatal."""
    opts: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        j = 1
        while j < len(a):
            c = a[j]
            pos = spec.find(c)
            if c == ":" or pos < 0:
                sys.stderr.write(f"{prog}: invalid option -- '{c}'\n")
                raise Fatal(usage)
            if pos + 1 < len(spec) and spec[pos + 1] == ":":
                if j + 1 < len(a):
                    arg = a[j + 1:]
                else:
                    i += 1
                    if i >= len(argv):
                        sys.stderr.write(f"{prog}: option requires an argument -- '{c}'\n")
                        raise Fatal(usage)
                    arg = argv[i]
                opts.append((c, arg))
                break
            opts.append((c, None))
            j += 1
        i += 1
    return opts, argv[i:]


def read_main_cf(config_dir: str) -> dict[str, str]:
    """name -> value from CONFIG_DIR/main.cf (no $name expansion).  A missing
    file is a Fatal `open DIR/main.cf: reason`, as Postfix."""
    path = os.path.join(config_dir, "main.cf")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError as e:
        raise Fatal(f"open {path}: {e.strerror}") from None
    params: dict[str, str] = {}
    logical: list[str] = []
    for raw in text.split("\n") + [""]:
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if raw[:1] in (" ", "\t") and logical:
            if stripped:
                logical.append(stripped)
            continue
        if logical:
            line = " ".join(logical)
            name, sep, value = line.partition("=")
            if sep:
                params[name.strip()] = value.strip()
        logical = [stripped] if stripped else []
    return params


def apply_config(o: Options) -> None:
    """-c DIR (or $MAIL_CONFIG): take the few parameters this command uses."""
    config_dir = o.config_dir or os.environ.get("MAIL_CONFIG")
    if not config_dir:
        return
    params = read_main_cf(config_dir)
    db_type = params.get("default_database_type", "")
    if db_type and "$" not in db_type:
        o.db_type = db_type
    if params.get("smtputf8_enable", "").lower() in ("no", "false", "0", "off"):
        o.utf8 = False
    host = params.get("myhostname", "")
    if host and "$" not in host:
        o.myhostname = host


def parse_args(argv: list[str]) -> Options:
    """postmap's command line, with its option-conflict messages (3.7)."""
    return parse_options(argv, OPTSPEC, PROG, USAGE, Options())


def parse_options(argv: list[str], spec: str, prog: str, usage: str, o: Options) -> Options:
    """Fill `o` from the command line (postmap's and postalias's options;
    getopt refuses the letters missing from `spec`), with their
    option-conflict messages (3.7)."""
    opts, rest = getopt(argv, spec, prog, usage)
    for c, arg in opts:
        if c == "b":
            o.body_key = True
        elif c == "c":
            o.config_dir = arg
        elif c == "d":
            if o.sequence or o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s -q or -d")
            o.delkey = arg
        elif c == "f":
            o.fold = False
        elif c == "F":
            o.rhs_is_file = True
        elif c == "h":
            o.header_key = True
        elif c == "i":
            o.update = True
        elif c == "m":
            o.mime_key = True
        elif c == "o":
            o.as_owner = False
        elif c == "p":
            o.save_perm = False
        elif c == "q":
            if o.sequence or o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s -q or -d")
            o.query = arg
        elif c == "r":
            o.dup = "replace"
        elif c == "s":
            if o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s or -q or -d")
            o.sequence = True
        elif c == "u":
            o.utf8 = False
        elif c == "U":
            o.force_utf8 = True
        elif c == "v":
            o.verbose += 1
        elif c == "w":
            o.dup = "ignore"
        # -n, -N: null-termination of keys (Berkeley DB detail): no effect here
    o.maps = rest
    return o


# ------------------------------------------------------------------ helpers

def split_map(spec: str, default_type: str) -> tuple[str, str]:
    """"type:name" -> (type, name); a name without ':' gets default_type."""
    ttype, sep, name = spec.partition(":")
    if not sep:
        return default_type, spec
    return ttype, name


def _known_types() -> dict[str, str]:
    from postier.maps import TYPES
    return TYPES


def dict_name(ttype: str, name: str) -> str:
    """Postfix's dict->name: hash tables are named after their .db file."""
    return name + ".db" if ttype == "hash" else name


def open_table(ttype: str, name: str, o: Options, warn: Callable[[str], None]) -> Map:
    """Open TYPE:NAME for reading (the Map object); Fatal on errors."""
    from postier.errors import MapError
    if ttype == "proxy":        # proxy:TYPE:NAME: the wrapped table (see postier.maps)
        inner, sep, rest = name.partition(":")
        if sep:
            return open_table(inner, rest, o, warn)
    if ttype not in _known_types():
        raise Fatal(f"unsupported dictionary type: {ttype}")
    try:
        if ttype == "hash":
            from postier.maps import hash as hash_map
            return hash_map.open(ttype, name, fold=o.fold, warn=warn, utf8=o.utf8)
        if ttype == "texthash":
            from postier.maps import texthash
            return texthash.open(ttype, name, fold=o.fold, warn=warn, utf8=o.utf8, dup=o.dup)
        from postier.maps import open_map
        return open_map(f"{ttype}:{name}", fold=o.fold, warn=warn, cache=False)
    except MapError as e:
        raise Fatal(str(e)) from None
    except ModuleNotFoundError as e:
        if e.name != _known_types()[ttype]:
            raise
        raise Fatal(f"unsupported dictionary type: {ttype} (not available in this "
                    "postier build)") from None


def valid_utf8(key: str) -> bool:
    if key.isascii():
        return True
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def b64_decode_value(ttype: str, name: str, key: str, value: str) -> str:
    """postmap -F on query: the base64-decoded value, or Fatal."""
    import base64
    import binascii
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        from postier.maps.source import printable
        log.warning(f"table {ttype}:{dict_name(ttype, name)}: key {printable(key)}: "
                    f"malformed BASE64 value: {printable(value)}")
        raise Fatal(f"table {ttype}:{dict_name(ttype, name)}: query error") from None
    return raw.decode("utf-8", "surrogateescape")


def lookup(table: Map, ttype: str, name: str, key: str, o: Options) -> str | None:
    """One lookup as postmap does it: the UTF-8 key check, then the table."""
    from postier.errors import MapError
    if o.utf8 and not valid_utf8(key):
        from postier.maps.source import printable
        log.warning(f'{ttype}:{dict_name(ttype, name)}: non-UTF-8 key "{printable(key)}": '
                    "malformed UTF-8 or invalid codepoint")
        return None
    try:
        value = table.lookup(key)
    except MapError as e:
        raise Fatal(str(e)) from None
    if value is not None and o.rhs_is_file:
        value = b64_decode_value(ttype, name, key, value)
    return value


def _out(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# ------------------------------------------------------------------ queries

def do_query(o: Options) -> int:
    warn = log.warning
    for spec in o.maps:
        ttype, name = split_map(spec, o.db_type)
        table = open_table(ttype, name, o, warn)
        value = lookup(table, ttype, name, o.query, o)
        if value is not None:
            sys.stdout.buffer.write(_out(value) + b"\n")
            sys.stdout.flush()
            return 0
    return 1


def stdin_keys() -> Iterator[bytes]:
    """Lines of stdin without their newline (vstring_get_nonl())."""
    data = sys.stdin.buffer.read()
    if not data:
        return iter(())
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return iter(lines)


def message_keys(o: Options) -> Iterator[bytes]:
    """-h / -b without MIME parsing: the logical header lines of the message
    on stdin (continuation lines joined with a newline), then (with -b) each
    body line."""
    lines = list(stdin_keys())
    i, n = 0, len(lines)
    header: bytes | None = None
    while i < n:
        line = lines[i]
        if header is not None and line[:1] in (b" ", b"\t"):
            header += b"\n" + line
            i += 1
            continue
        if header is not None:
            if o.header_key:
                yield header
            header = None
        if _is_header(line):
            header = line
            i += 1
            continue
        break
    if header is not None and o.header_key:
        yield header
    if not o.body_key:
        return
    if i < n and lines[i] == b"":
        i += 1
    yield from lines[i:]


def _is_header(line: bytes) -> bool:
    """Postfix is_header(): a name of printable non-space characters, then
    optional whitespace, then ':'."""
    name_len = 0
    for i, c in enumerate(line):
        if c == 58:
            return name_len > 0
        if c in (32, 9):
            rest = line[i:].lstrip(b" \t")
            return name_len > 0 and rest[:1] == b":"
        if c < 33 or c > 126:
            return False
        name_len += 1
    return False


def do_queries(o: Options) -> int:
    """-q -: keys from stdin, `key<TAB>value` for each hit."""
    warn = log.warning
    specs = [split_map(s, o.db_type) for s in o.maps]
    tables: list = [None] * len(specs)
    out = sys.stdout.buffer
    found = False
    if o.header_key or o.body_key:
        keys = message_keys(o)
    else:
        keys = stdin_keys()
    if not o.rhs_is_file and all(t == "hash" for t, _ in specs):
        found = _fast_queries(specs, keys, o, out)
    else:
        for raw in keys:
            key = raw.decode("utf-8", "surrogateescape")
            for n, (ttype, name) in enumerate(specs):
                if tables[n] is None:
                    tables[n] = open_table(ttype, name, o, warn)
                value = lookup(tables[n], ttype, name, key, o)
                if value is not None:
                    out.write(raw + o.sep + _out(value) + b"\n")
                    found = True
                    break
    out.flush()
    return 0 if found else 1


def _fast_queries(specs: list[tuple[str, str]], keys: Iterator[bytes], o: Options,
                  out: BinaryIO) -> bool:
    """-q - when every table is hash: work in bytes (no str round trip for
    ASCII keys).  Tables are opened when first needed, as postmap does."""
    from postier.maps.source import fold_key, printable
    n_maps = len(specs)
    maps: list = [None] * n_maps
    tables: list = [None] * n_maps
    fold, utf8, sep = o.fold, o.utf8, o.sep
    found = False
    write = out.write
    for raw in keys:
        if raw.isascii():
            k = raw.lower() if fold else raw
        else:
            if utf8:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    if maps[0] is None:
                        maps[0] = open_table("hash", specs[0][1], o, log.warning)
                        tables[0] = maps[0].table
                    log.warning(f'hash:{dict_name("hash", specs[0][1])}: non-UTF-8 key '
                                f'"{printable(raw)}": malformed UTF-8 or invalid codepoint')
                    continue
            k = fold_key(raw, utf8) if fold else raw
        for n in range(n_maps):
            table = tables[n]
            if table is None:
                maps[n] = open_table("hash", specs[n][1], o, log.warning)
                table = tables[n] = maps[n].table
            v = table.get(k)
            if v is not None:
                if not v:       # the shared empty-result warnings
                    maps[n].lookup(raw.decode("utf-8", "surrogateescape"))
                write(raw + sep + v + b"\n")
                found = True
                break
    return found


# ------------------------------------------------------------------ -s

def do_sequence(o: Options) -> int:
    from postier.maps.source import printable
    if not o.maps:
        return 1
    ttype, name = split_map(o.maps[0], o.db_type)
    table = open_table(ttype, name, o, log.warning)
    items = getattr(table, "items", None)
    if items is None:
        raise Fatal(f"table {ttype}:{name}: sequence operation is not supported")
    out = sys.stdout.buffer
    from postier.errors import MapError
    try:
        for key, value in items():
            if key == "":
                log.warning(f"table {ttype}:{name}: empty lookup key value is not allowed")
            elif value == "":
                log.warning(f"table {ttype}:{name}: key {printable(key)}: "
                            "empty string result is not allowed")
                log.warning(f"table {ttype}:{name} should return NO RESULT in case of "
                            "NOT FOUND")
            if o.rhs_is_file:
                value = b64_decode_value(ttype, name, key, value)
            out.write(_out(key) + o.sep + _out(value) + b"\n")
    except MapError as e:
        out.flush()
        raise Fatal(str(e)) from None
    out.flush()
    return 0


# ------------------------------------------------------------------ build, -i, -d

def _check_buildable(ttype: str) -> None:
    if ttype in BUILDABLE:
        return
    if ttype in _known_types():
        raise Fatal(f"unsupported dictionary type: {ttype} does not support bulk-mode "
                    "creation.")
    raise Fatal(f"unsupported dictionary type: {ttype} (postier builds hash: tables only)")


def _file_owner(st: os.stat_result | None, o: Options) -> tuple[int, int] | None:
    """postmap runs as the owner of the source file when started by root
    (unless -o): the new table gets that owner."""
    if st is None or not o.as_owner or os.getuid() != 0:
        return None
    if st.st_uid == os.geteuid() and st.st_gid == os.getegid():
        return None
    return st.st_uid, st.st_gid


def _mode(st: os.stat_result | None, path: str, o: Options) -> int:
    import stat as stat_mod

    from postier.maps.hash import file_mode_for
    src_mode = st.st_mode if st is not None and stat_mod.S_ISREG(st.st_mode) else None
    return file_mode_for(src_mode, path, o.save_perm)


class TableLock:
    """An exclusive flock on the current FILE.db (re-checked after waiting,
    since a writer replaces the file).  No-op when the file does not exist."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> TableLock:
        import fcntl
        while True:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return self
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except OSError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _rhs_file_transform(label: str) -> Callable[[int, bytes], bytes | None]:
    """postmap -F at build: replace the value (file names) with the base64
    of the files' contents, joined by newlines."""
    import base64
    import re

    from postier.maps.source import printable

    def transform(lineno: int, value: bytes) -> bytes | None:
        parts = []
        for fname in re.split(rb"[,\s]+", value):
            if not fname:
                continue
            try:
                with open(fname, "rb") as f:
                    parts.append(f.read())
            except OSError as e:
                log.warning(f"{printable(label)}, line {lineno}: open {printable(fname)}: "
                            f"{e.strerror}: skipping this entry")
                return None
        return base64.b64encode(b"\n".join(parts))

    return transform


def build_input(o: Options, name: str) -> tuple[str, bytes, os.stat_result | None]:
    """(label, data, stat) of what to build from: stdin with -i, else the
    source file NAME (Fatal when it cannot be read)."""
    from postier.errors import MapError
    from postier.maps.source import read_source
    if o.update:
        try:
            st = os.fstat(sys.stdin.fileno())
        except (OSError, ValueError):
            st = None
        return "stdin", sys.stdin.buffer.read(), st
    try:
        data = read_source(name)
        st = os.stat(name)
    except MapError as e:
        raise Fatal(str(e)) from None
    return name, data, st


def open_existing(path: str) -> Any:
    """The hash table at PATH for -i, or None when there is no such file."""
    from postier.errors import MapError
    from postier.maps import hash as hash_map
    try:
        return hash_map._impl().HashTable(path)
    except MapError:
        if os.path.exists(path):
            raise
        return None


def do_build(o: Options, ttype: str, name: str) -> None:
    """postmap TYPE:FILE (bulk create) or postmap -i TYPE:FILE (update)."""
    from postier.errors import MapError
    from postier.maps import hash as hash_map
    _check_buildable(ttype)
    path = hash_map.db_path(name)
    label, data, st = build_input(o, name)
    transform = _rhs_file_transform(label) if o.rhs_is_file else None
    owner = _file_owner(st, o)
    try:
        with TableLock(path):
            mode = _mode(st, path, o)
            if not o.update:
                hash_map.build_from_source(name, data, fold=o.fold, utf8=o.utf8, dup=o.dup,
                                           warn=log.warning, label=label, mode=mode,
                                           owner=owner, transform=transform)
                return
            import itertools
            old = open_existing(path)
            new = hash_map.source_pairs(data, label, fold=o.fold, utf8=o.utf8,
                                        warn=log.warning, transform=transform)
            if old is None:
                hash_map.build(name, new, fold_flag=o.fold, dup=o.dup, warn=log.warning,
                               mode=mode, owner=owner)
                return
            try:
                hash_map.build(name, itertools.chain(old.items(), new),
                               fold_flag=old.folded and o.fold, dup=o.dup,
                               warn=log.warning, mode=mode, owner=owner)
            finally:
                old.close()
    except MapError as e:
        raise Fatal(str(e)) from None


def delete_keys(o: Options, ttype: str, name: str, keys: list[str]) -> bool:
    """Remove `keys` from hash:NAME (one atomic rewrite); True if any existed."""
    from postier.errors import MapError
    from postier.maps import hash as hash_map
    from postier.maps.source import fold_text
    if ttype != "hash":
        if ttype in _known_types():
            raise Fatal(f"{ttype}:{name} map requires O_RDONLY access mode")
        raise Fatal(f"unsupported dictionary type: {ttype}")
    path = hash_map.db_path(name)
    folded = [fold_text(k, o.utf8) if o.fold else k for k in keys]
    drop = {k.encode("utf-8", "surrogateescape") for k in folded}
    try:
        with TableLock(path):
            table = hash_map.open(ttype, name, fold=o.fold, warn=log.warning, utf8=o.utf8)
            t = table.table
            try:
                present = {k for k in drop if k in t}
                if not present:
                    return False
                st = os.stat(path)
                kept = ((k, v) for k, v in t.items() if k not in present)
                hash_map.build(name, kept, fold_flag=t.folded, dup="warn", warn=log.warning,
                               mode=st.st_mode & 0o7777, owner=(st.st_uid, st.st_gid)
                               if os.getuid() == 0 else None)
            finally:
                t.close()
    except MapError as e:
        raise Fatal(str(e)) from None
    return True


def do_delete(o: Options) -> int:
    if o.delkey == "-":
        keys = [k.decode("utf-8", "surrogateescape") for k in stdin_keys()]
        specs = [split_map(s, o.db_type) for s in o.maps]
        found = False
        for ttype, name in specs:
            found |= delete_keys(o, ttype, name, keys)
        return 0 if found else 1
    found = False
    for spec in o.maps:
        ttype, name = split_map(spec, o.db_type)
        found |= delete_keys(o, ttype, name, [o.delkey])
    return 0 if found else 1


# ------------------------------------------------------------------ main

def run(o: Options) -> int:
    apply_config(o)
    any_key = o.header_key or o.body_key or o.mime_key
    if o.query != "-" and any_key:
        raise Fatal('specify -b -h or -m only with "-q -"')
    if any_key and not (o.header_key or o.body_key):
        log.warning("ignoring -m option without -b or -h")
    elif o.mime_key:
        raise Fatal("option -m (MIME parsing of the query message) is not supported by "
                    "postier map; use -h or -b without -m")
    if (o.header_key or o.body_key) and not o.force_utf8:
        o.utf8 = False
    return run_action(o, do_build, USAGE)


def run_action(o: Options, build: Callable[[Options, str, str], None], usage: str) -> int:
    """-d, -q, -s, else build each table with `build(o, type, name)`."""
    if o.delkey is not None:
        if not o.maps:
            raise Fatal(usage)
        return do_delete(o)
    if o.query is not None:
        if not o.maps:
            raise Fatal(usage)
        if o.query == "-":
            return do_queries(o)
        return do_query(o)
    if o.sequence:
        return do_sequence(o)
    if not o.maps:
        raise Fatal(usage)
    for spec in o.maps:
        ttype, name = split_map(spec, o.db_type)
        build(o, ttype, name)
    return 0


def main(argv: list[str]) -> int:
    """`postier map ARGS`: exit status as postmap."""
    return command_main(argv, PROG, HELP, parse_args, run)


def command_main(argv: list[str], prog: str, help_text: str,
                 parse: Callable[[list[str]], Options], run: Callable[[Options], int]) -> int:
    """postmap/postalias main: --help, then run(parse(argv)); a Fatal or
    PostierError prints as `PROG: fatal: text` (exit 1)."""
    log.setup(prog, progname=prog, stderr=True)
    if argv[:1] == ["--help"]:
        sys.stdout.write(help_text)
        return 0
    try:
        return run(parse(argv))
    except (Fatal, PostierError) as e:
        _flush_quietly()
        log.fatal(str(e))
    return 1


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
