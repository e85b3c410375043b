"""Banned attachments: file names, extensions and MIME types, also inside archives.

    rules = BannedRules.from_config(items, max_depth=8, max_ratio=300, max_size=104857600)
    hits = check_message(message_bytes, rules)      # [] when nothing is banned
    hits[0].name, hits[0].reason                    # "invoice.pdf.exe", "double extension .pdf.exe"

`banned_filename_rules` members (a list, like every Postfix list parameter):

* `exe`, `.exe`, `*.exe` -- a file name extension (case-insensitive);
* `type/subtype`, `type/*` -- a declared MIME type (Content-Type of a part);
* `type:name` -- a lookup table (regexp:, pcre:, hash:, ...), asked with each
  decoded file name (archive members with their path inside the archive),
  then with the Content-Type of each MIME part.  A result other than OK,
  PERMIT or DUNNO (any case) bans it, the result text
  (minus a leading REJECT/DISCARD word) being the reason.  Tables are asked
  before the extension and type rules, in the order written; the first
  table that decides wins: OK/PERMIT exempts the name (or type) from the
  other rules, DUNNO or no entry leaves it to them.

The default is empty (no banned-name checks).  The example list, taken from
the header_checks(5) manual's attachment rule:

    banned_filename_rules = ade adp app asp bas bat chm cmd com cpl crt dll exe
        hlp hta htt inf ins isp js jse lnk mdb mde mdt mdw msc msi msp mst pcd
        pif reg scf scr sct shb shs vb vbe vbs vbx wsc wsf wsh

What is examined (amavisd-new's banned_filename checks, with Python's
`email` package for the MIME structure):

* every MIME part's names: `Content-Disposition: filename=` and
  `Content-Type: name=` (both, an attacker may disagree with himself), RFC
  2231 parameters (`filename*=UTF-8''...`, continuations) and RFC 2047
  encoded words (`=?UTF-8?B?...?=`) decoded;
* names are normalised before the extension test as Windows would see them:
  path components before `/` or `\\` dropped, trailing dots and spaces
  dropped, Unicode format characters (zero-width, bidi) removed.  A name
  containing a bidi override (U+202A-U+202E, U+2066-U+2069, the
  "exe.pdf" trick) is banned in itself;
* double extensions: `invoice.pdf.exe` is banned because of `.exe`; the
  reason says "double extension .pdf.exe";
* archives (found by content: zip, gzip, bzip2, xz, tar; also nested, and a
  .tar.gz/.tgz as one archive): member names and their types are checked
  like attachment names, recursively up to `banned_archive_max_depth` levels
  of archives.  zip members are read only when they are archives
  themselves; tar and compressed streams are read as streams.

Archive bombs are banned (not deferred): a member whose uncompressed size is
at least 1 MiB and more than `banned_archive_max_ratio` times its compressed
size, more than `banned_archive_max_size` bytes uncompressed in one message
(declared zip sizes and bytes actually decompressed both count), archives
nested deeper than `banned_archive_max_depth`, or more than MAX_MEMBERS
members.  amavisd-new passes such mail as UNCHECKED by default; postier
refuses it, because a deferral would only make the sender retry for days.
Encrypted zip members cannot be read; their names are still checked.
Corrupt archives are not banned (clamd may still object to them).

Parameters read (through postier.content.scan): banned_filename_rules,
banned_archive_max_depth, banned_archive_max_ratio, banned_archive_max_size.
"""

from __future__ import annotations

import bz2
import email
import email.feedparser
import email.header
import email.message
import email.parser
import email.utils
import gzip
import importlib
import io
import lzma
import quopri  # noqa: F401 - used by email's get_payload(decode=True)
import re
import tarfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from postier.errors import ConfigError, MapError

#: Codecs imported now, not on first use: smtpd workers run without the
#: rights to read the Python installation after the privilege drop (the
#: master imports every postier module before it forks).  cp437 decodes zip
#: member names; the others are the common charsets of RFC 2047/2231 names.
CODECS = ("cp437", "utf_8", "utf_16", "latin_1", "ascii", "iso8859_2", "iso8859_15",
          "cp1250", "cp1251", "cp1252", "koi8_r", "shift_jis", "euc_jp", "iso2022_jp",
          "gb2312", "gbk", "gb18030", "big5", "euc_kr")
for _codec in CODECS:
    try:
        importlib.import_module(f"encodings.{_codec}")
    except ImportError:     # pragma: no cover - every CPython build has them
        pass

#: The header_checks(5) manual's attachment-name rule, as an extension list.
DEFAULT_EXAMPLE = (
    "ade adp app asp bas bat chm cmd com cpl crt dll exe hlp hta htt inf ins isp js jse "
    "lnk mdb mde mdt mdw msc msi msp mst pcd pif reg scf scr sct shb shs vb vbe vbs vbx "
    "wsc wsf wsh")

RATIO_FLOOR = 1024 * 1024       # members smaller than this are never compression bombs
MAX_MEMBERS = 10000             # members per message, over all archives
TAR_MAGIC_OFFSET = 257
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ALLOW = ("ok", "permit")
_ARCHIVE_TYPES = {"application/zip", "application/x-zip-compressed", "application/gzip",
                  "application/x-gzip", "application/x-tar", "application/x-gtar",
                  "application/x-compressed", "application/x-bzip2", "application/x-xz",
                  "application/java-archive", "application/octet-stream"}


@dataclass
class BannedHit:
    """One banned name (or type, or archive bomb)."""

    name: str                   # the decoded file name ("" when only the type matched)
    reason: str                 # why: ".exe", "double extension .pdf.exe", "MIME type ..."
    where: str = ""             # the path through archives: "files.zip/inner/evil.exe"

    def short(self) -> str:
        """The text for an SMTP reply and the log: printable ASCII, bounded."""
        text = self.where or self.name or self.reason
        text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
        return text if len(text) <= 100 else text[:97] + "..."


@dataclass
class BannedRules:
    extensions: frozenset[str] = frozenset()
    mime_types: frozenset[str] = frozenset()
    mime_wildcards: frozenset[str] = frozenset()     # "application" for application/*
    tables: list[Any] = field(default_factory=list)
    max_depth: int = 8
    max_ratio: int = 300
    max_size: int = 104857600

    @property
    def enabled(self) -> bool:
        return bool(self.extensions or self.mime_types or self.mime_wildcards or self.tables)

    @classmethod
    def from_config(cls, items: list[str], *, max_depth: int = 8, max_ratio: int = 300,
                    max_size: int = 104857600) -> BannedRules:
        """Build the rules from banned_filename_rules members; ConfigError
        for a member that is none of the accepted forms."""
        exts: set[str] = set()
        types: set[str] = set()
        wild: set[str] = set()
        tables: list[Any] = []
        for raw in items:
            item = raw.strip()
            if not item:
                continue
            if re.match(r"^[A-Za-z0-9_-]+:", item) and "/" not in item.split(":", 1)[0]:
                from postier.maps import open_map
                try:
                    tables.append(open_map(item))
                except MapError as e:
                    raise ConfigError(f"banned_filename_rules: {e}") from None
                continue
            if "/" in item:
                major, _, minor = item.lower().partition("/")
                if not major or not minor or not re.match(r"^[a-z0-9!#$&^_.+-]+$", major) or (
                        minor != "*" and not re.match(r"^[a-z0-9!#$&^_.+-]+$", minor)):
                    raise ConfigError(f'banned_filename_rules: bad MIME type "{item}" '
                                      f"(expected type/subtype or type/*)")
                if minor == "*":
                    wild.add(major)
                else:
                    types.add(f"{major}/{minor}")
                continue
            ext = item[2:] if item.startswith("*.") else item.lstrip(".")
            if not ext or not re.match(r"^[\w{}-]+$", ext):
                raise ConfigError(f'banned_filename_rules: bad rule "{item}" (expected an '
                                  f"extension like exe, a MIME type like application/x-msdownload, "
                                  f"or a lookup table type:name)")
            exts.add(ext.lower())
        return cls(frozenset(exts), frozenset(types), frozenset(wild), tables,
                   max_depth, max_ratio, max_size)


# --------------------------------------------------------------------------- names

def decode_name(value: Any) -> str:
    """A file name parameter as sent -> text: RFC 2231 (already split by the
    email package into a (charset, language, value) tuple) and RFC 2047
    encoded words decoded; undecodable input kept as it is."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        try:
            value = email.utils.collapse_rfc2231_value(value, errors="replace")
        except (LookupError, TypeError, ValueError):
            value = str(value[2])
    text = str(value)
    if "=?" in text:
        try:
            text = str(email.header.make_header(email.header.decode_header(text)))
        except (email.errors.HeaderParseError, LookupError, UnicodeError, ValueError):
            pass
    return text


def normalize_name(name: str) -> str:
    """The name as Windows would use it: last path component, trailing dots
    and spaces removed, Unicode format characters (category Cf) removed."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if unicodedata.category(c) != "Cf")
    return base.rstrip(". \t")


def name_reason(name: str, rules: BannedRules) -> str | None:
    """Why the file name `name` is banned by the extension rules, or None."""
    if _BIDI.search(name):
        return "bidi override character in name"
    base = normalize_name(name).lower()
    if "." not in base:
        return None
    parts = base.split(".")
    ext = parts[-1]
    if ext in rules.extensions:
        if len(parts) >= 3 and parts[-2] and parts[0]:
            return f"double extension .{parts[-2]}.{ext}"
        return f".{ext}"
    return None


def type_reason(ctype: str, rules: BannedRules) -> str | None:
    ctype = ctype.lower()
    if ctype in rules.mime_types or ctype.partition("/")[0] in rules.mime_wildcards:
        return f"MIME type {ctype}"
    return None


ALLOWED = ""      # table_reason(): the name is allowed, no further rule applies


def table_reason(key: str, rules: BannedRules) -> str | None:
    """The first table decision for `key`: the reason text when banned,
    ALLOWED ("") for OK/PERMIT, None when no table decides (not found or
    DUNNO)."""
    for table in rules.tables:
        try:
            value = table.lookup(key)
        except MapError:
            continue
        if value is None:
            continue
        word, _, rest = value.strip().partition(" ")
        if word.lower() == "dunno":
            continue
        if word.lower() in _ALLOW:
            return ALLOWED
        if word.upper() in ("REJECT", "DISCARD", "BANNED"):
            value = rest.strip() or word
        return value.strip() or "banned by table"
    return None


# --------------------------------------------------------------------------- archives

class ArchiveBomb(Exception):
    """A limit was passed; str() is the reason."""


class _Budget:
    def __init__(self, rules: BannedRules):
        self.rules = rules
        self.size = 0
        self.members = 0

    def add(self, n: int) -> None:
        self.size += n
        if self.rules.max_size and self.size > self.rules.max_size:
            raise ArchiveBomb(f"archive bomb: more than {self.rules.max_size} bytes uncompressed")

    def member(self) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise ArchiveBomb(f"archive bomb: more than {MAX_MEMBERS} archive members")

    def ratio(self, out: int, inp: int) -> None:
        r = self.rules.max_ratio
        if r and out >= RATIO_FLOOR and out > r * max(inp, 1):
            raise ArchiveBomb(f"archive bomb: compression ratio {out // max(inp, 1)} > {r}")

    def left(self) -> int:
        return max(0, self.rules.max_size - self.size) if self.rules.max_size else 1 << 62


class _CountingReader(io.RawIOBase):
    """A decompressing stream that charges every byte to the budget and
    stops the stream at the ratio or size limits."""

    def __init__(self, inner: Any, budget: _Budget, compressed: int):
        self.inner = inner
        self.budget = budget
        self.compressed = compressed
        self.out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.inner.readinto(b) if hasattr(self.inner, "readinto") else 0
        if n:
            self.out += n
            self.budget.add(n)
            self.budget.ratio(self.out, self.compressed)
        return n


def _read_full(raw: Any, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        buf = bytearray(n - len(out))
        got = raw.readinto(buf)
        if not got:
            break
        out += buf[:got]
    return bytes(out)


class _Prefixed(io.RawIOBase):
    """`head` (already read) followed by the rest of `raw`."""

    def __init__(self, head: bytes, raw: Any):
        self.head = head
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return self.raw.readinto(b)


def _kind(data: bytes) -> str | None:
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "zip"
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh":
        return "bzip2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if data[TAR_MAGIC_OFFSET:TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    return None


_ARCHIVE_EXT = (".zip", ".jar", ".gz", ".tgz", ".tar", ".bz2", ".tbz", ".tbz2", ".xz", ".txz")


def _maybe_archive(name: str) -> bool:
    return name.lower().rstrip(". ").endswith(_ARCHIVE_EXT)


class _Walker:
    def __init__(self, rules: BannedRules):
        self.rules = rules
        self.budget = _Budget(rules)
        self.hits: list[BannedHit] = []

    def name(self, name: str, where: str) -> None:
        if not name:
            return
        reason = table_reason(name, self.rules) if self.rules.tables else None
        if reason is None:
            reason = name_reason(name, self.rules)
        if reason:
            self.hits.append(BannedHit(name, reason, where))

    def blob(self, data: bytes, label: str, depth: int) -> None:
        """Inspect `data` (an attachment or member) if it is an archive."""
        kind = _kind(data)
        if kind is None:
            return
        if depth >= self.rules.max_depth:
            raise ArchiveBomb(f"archive nesting deeper than {self.rules.max_depth} levels")
        if kind == "zip":
            self.zip(data, label, depth + 1)
        elif kind == "tar":
            self.tar(io.BytesIO(data), label, depth + 1)
        else:
            self.compressed(kind, data, label, depth + 1)

    def zip(self, data: bytes, label: str, depth: int) -> None:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError):
            return
        for info in infos:
            self.budget.member()
            where = f"{label}/{info.filename}"
            self.name(info.filename, where)
            if info.is_dir():
                continue
            self.budget.add(info.file_size)
            self.budget.ratio(info.file_size, info.compress_size)
        for info in infos:
            if info.is_dir() or info.flag_bits & 1:     # encrypted: cannot look inside
                continue
            if not _maybe_archive(info.filename) and info.file_size < 262:
                continue
            try:
                with zf.open(info) as f:
                    head = f.read(512)
                    if _kind(head) is None:
                        continue
                    cap = self.budget.left()
                    rest = f.read(cap + 1)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError,
                    RuntimeError, zlib.error):
                continue
            content = head + rest
            if len(rest) > cap:
                raise ArchiveBomb(f"archive bomb: more than {self.rules.max_size} bytes "
                                  f"uncompressed")
            self.budget.ratio(len(content), info.compress_size)
            self.blob(content, f"{label}/{info.filename}", depth)

    def tar(self, stream: Any, label: str, depth: int) -> None:
        try:
            tf = tarfile.open(fileobj=stream, mode="r|")
            for m in tf:
                self.budget.member()
                where = f"{label}/{m.name}"
                self.name(m.name, where)
                if not m.isfile():
                    continue
                if isinstance(stream, io.BytesIO):
                    self.budget.add(m.size)    # a decompressing stream charges itself
                if _maybe_archive(m.name) or m.size >= 262:
                    f = tf.extractfile(m)
                    if f is None:
                        continue
                    head = f.read(512)
                    if _kind(head) is None:
                        continue
                    cap = self.budget.left()
                    rest = f.read(cap + 1)
                    if len(rest) > cap:
                        raise ArchiveBomb(f"archive bomb: more than {self.rules.max_size} "
                                          f"bytes uncompressed")
                    self.blob(head + rest, where, depth)
        except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            return

    def compressed(self, kind: str, data: bytes, label: str, depth: int) -> None:
        try:
            if kind == "gzip":
                inner: Any = gzip.GzipFile(fileobj=io.BytesIO(data))
            elif kind == "bzip2":
                inner = bz2.BZ2File(io.BytesIO(data))
            else:
                inner = lzma.LZMAFile(io.BytesIO(data))
            counting = _CountingReader(inner, self.budget, len(data))
            head = _read_full(counting, TAR_MAGIC_OFFSET + 8)
            reader = io.BufferedReader(_Prefixed(head, counting), 65536)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            return
        inner_name = _gzip_name(data) if kind == "gzip" else ""
        if inner_name:
            self.name(inner_name, f"{label}/{inner_name}")
        try:
            if _kind(head) == "tar":
                self.tar(reader, label, depth)
            elif _kind(head) is not None:
                cap = self.budget.left()
                content = reader.read(cap + 1)
                self.blob(content, f"{label}/{inner_name or '(data)'}", depth)
            else:
                # not an archive: decompress (charged to the budget) for the ratio check
                while reader.read(1 << 20):
                    pass
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            return


def _gzip_name(data: bytes) -> str:
    """The FNAME field of a gzip header (RFC 1952), or ""."""
    if len(data) < 10 or not data[3] & 0x08:
        return ""
    pos = 10
    if data[3] & 0x04:               # FEXTRA
        if len(data) < 12:
            return ""
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\0", pos)
    if end < 0:
        return ""
    return data[pos:end].decode("latin-1")


# --------------------------------------------------------------------------- message

_HEADERS_ONLY = email.parser.BytesHeaderParser()

def part_names(part: Any) -> list[str]:
    """The decoded, distinct file names a MIME part declares."""
    names: list[str] = []
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, header=header)
        except (ValueError, IndexError, TypeError):
            continue
        if value is None:
            continue
        text = decode_name(value).strip()
        if text and text not in names:
            names.append(text)
    return names


def check_message(data: bytes, rules: BannedRules) -> list[BannedHit]:
    """Every banned name/type in the message `data` (bytes, LF or CRLF line
    ends).  Stops at the first archive bomb (reported as a hit)."""
    if not rules.enabled:
        return []
    # a single-part message needs no body parse: its headers say everything
    msg = _HEADERS_ONLY.parsebytes(data)
    if msg.get_content_maintype() in ("multipart", "message"):
        msg = email.message_from_bytes(data)
    w = _Walker(rules)
    try:
        for i, part in enumerate(msg.walk()):
            ctype = part.get_content_type()
            names = part_names(part)
            label = names[0] if names else f"part{i}"
            for name in names:
                w.name(name, "")
            reason = None
            if rules.tables and (names or not part.is_multipart()):
                reason = table_reason(ctype, rules)
            if reason is None:
                reason = type_reason(ctype, rules)
            if reason:
                w.hits.append(BannedHit(names[0] if names else "", reason,
                                        names[0] if names else ctype))
            if part.is_multipart() or ctype.startswith(("text/", "message/")):
                continue
            if not names and ctype not in _ARCHIVE_TYPES:
                continue
            try:
                payload = part.get_payload(decode=True)
            except (ValueError, TypeError, AssertionError):
                continue
            if isinstance(payload, bytes) and payload:
                w.blob(payload, label, 0)
    except ArchiveBomb as e:
        w.hits.append(BannedHit("", str(e), ""))
    except RecursionError:
        w.hits.append(BannedHit("", "MIME structure nested too deeply", ""))
    return w.hits
