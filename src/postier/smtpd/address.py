"""SMTP envelope addresses as Postfix's smtpd sees them.

Three jobs, each a port of the Postfix code named:

* `smtpd_tokens(line)` splits a command line into arguments (smtpd_token.c):
  `<...>` and `"..."` are single tokens even with blanks inside, `FROM:` and
  `TO:` end a token, and an unterminated `<` or `"` marks the token as an
  error (`501 5.1.7 Bad sender address syntax`, no log line).
* `parse_path(arg, sender)` turns a MAIL FROM / RCPT TO argument into the
  address in internal (unquoted) form (smtpd.c extract_addr): the brackets
  go, a source route `@a,@b:` is dropped, `"x@y"@z` becomes `x@y@z`, `<>` is
  the null address (MAIL only).  An argument with two address forms
  (`<a b@c>`), an empty recipient, or an address whose domain is not a
  hostname or address literal after resolution raises `AddressError` with
  `warn=True`: the server logs
  `warning: Illegal address syntax from NAME[ADDR] in MAIL command: <...>`
  (text from `illegal_syntax_warning()`) and replies `501 5.1.7 Bad sender
  address syntax` / `501 5.1.3 Bad recipient address syntax`.
  `Path.external` is the quoted form used in log lines
  (`to=<"x@elsewhere.test"@example.test>`).
* `Resolver` classifies an address like trivial-rewrite's resolve.c: it
  strips local domains (mydestination, own `[address literals]`), applies
  the %-hack and `!` bang paths to what is left, appends `@$myhostname` to a
  bare local part, and returns the final recipient, its domain, the address
  class (local, virtual alias, virtual mailbox, relay, default) and the
  ROUTED/ERROR flags.  The restriction engine builds one from main.cf; the
  lists it consults are passed in as callables.

Also: `valid_hostname()`, `valid_hostaddr()`, `valid_mailhost_addr()`,
`valid_mailhost_literal()` (Postfix's valid_hostname.c and friends) and
`external()` (quote_822_local).

Parameters read: none directly.  The `Resolver` is given the values of
myhostname, swap_bangpath, allow_percent_hack, append_dot_mydomain, mydomain,
resolve_dequoted_address, resolve_null_domain, resolve_numeric_domain,
empty_address_recipient and smtputf8_enable by its caller.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from postier.maps.access import quote_822_local, valid_ipv4, valid_ipv6

# ---------------------------------------------------------------------------
# Host names and address literals (valid_hostname.c, valid_mailhost_addr.c)

VALID_LABEL_LEN = 63
VALID_HOSTNAME_LEN = 255


@functools.lru_cache(maxsize=4096)
def valid_hostname(name: str) -> bool:
    """valid_hostname(): letters, digits, '_' and '-' (not at either end of
    a label), dots between non-empty labels, labels up to 63 characters,
    255 in all, and not all-numeric."""
    if not name or len(name) > VALID_HOSTNAME_LEN:
        return False
    label_length = 0
    non_numeric = False
    n = len(name)
    for i, ch in enumerate(name):
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            label_length += 1
            if label_length > VALID_LABEL_LEN:
                return False
            if not ch.isdigit():
                non_numeric = True
        elif ch == ".":
            if label_length == 0 or i == n - 1:
                return False
            label_length = 0
        elif ch == "-":
            non_numeric = True
            label_length += 1
            if label_length == 1 or i == n - 1 or name[i + 1] == ".":
                return False
        else:
            return False
    return non_numeric


def valid_hostaddr(text: str) -> bool:
    """A bare IPv4 or IPv6 address (valid_hostaddr())."""
    return valid_ipv6(text) if ":" in text else valid_ipv4(text)


def valid_mailhost_addr(text: str) -> str | None:
    """The address inside `[...]`: IPv4, or `IPv6:` (any case) + IPv6.
    Returns the bare address, or None when invalid."""
    if text[:5].lower() == "ipv6:":
        bare = text[5:]
        return bare if valid_ipv6(bare) else None
    return text if valid_ipv4(text) else None


def valid_mailhost_literal(text: str) -> bool:
    """`[address]` as valid_mailhost_literal() accepts it."""
    return (len(text) > 2 and text[0] == "[" and text[-1] == "]"
            and valid_mailhost_addr(text[1:-1]) is not None)


def valid_utf8_hostname(name: str, smtputf8: bool) -> bool:
    if name.isascii():
        return valid_hostname(name)
    if not smtputf8:
        return False
    try:
        return valid_hostname(name.encode("idna").decode("ascii"))
    except UnicodeError:
        return False


def strip_one_dot(name: str) -> str:
    """dup_if_truncate(): drop one trailing dot, but not from `..`."""
    if len(name) > 1 and name[-1] == "." and name[-2] != ".":
        return name[:-1]
    return name


def external(address: str) -> str:
    """The quoted (RFC 5321 external) form of an internal-form address, as
    Postfix logs it: `x@elsewhere.test@example.test` ->
    `"x@elsewhere.test"@example.test`; the null address stays empty."""
    return quote_822_local(address) if address else address


external_form = external


def printable(text: str, repl: str = "?") -> str:
    """printable(): replace non-printable characters (as the log shows)."""
    return "".join(ch if (ch.isprintable() or ch == " ") and ch not in "\r\n\t" else repl
                   for ch in text)


# ---------------------------------------------------------------------------
# Command-line tokens (smtpd_token.c)

@dataclass(frozen=True)
class Token:
    text: str
    error: bool = False      # unterminated <...> or "..."


def _smtp_quoted(line: str, i: int, start: str, last: str, out: list[str]) -> tuple[int, bool]:
    """Copy a <...> or "..." construct starting after `start` (already
    copied); returns (new index, ok).  Quotes nest inside <...>."""
    stack = [last]
    n = len(line)
    while i < n:
        c = line[i]
        out.append(c)
        i += 1
        if c == "\\":
            if i >= n:
                break
            out.append(line[i])
            i += 1
        elif c == stack[-1]:
            stack.pop()
            if not stack:
                return i, True
        elif c == '"':
            stack.append('"')
    return i, False


def smtpd_tokens(line: str) -> list[Token]:
    """Split an SMTP command line the way Postfix's smtpd does."""
    tokens: list[Token] = []
    i, n = 0, len(line)
    while True:
        buf: list[str] = []
        error = False
        while i < n:
            c = line[i]
            i += 1
            if c in " \t\r\n\f\v":
                while i < n and line[i] in " \t\r\n\f\v":
                    i += 1
                if buf:
                    break
            elif c in '<"':
                buf.append(c)
                i, ok = _smtp_quoted(line, i, c, ">" if c == "<" else '"', buf)
                error = error or not ok
            elif c == ":":
                buf.append(c)
                word = "".join(buf).lower()
                if word in ("from:", "to:"):
                    break
            else:
                if c == "\\":
                    buf.append(c)
                    if i >= n:
                        break
                    c = line[i]
                    i += 1
                buf.append(c)
        if not buf:
            return tokens
        tokens.append(Token("".join(buf), error))


# ---------------------------------------------------------------------------
# RFC 822 address parsing (tok822_scan / tok822_parse, simplified)

_SPECIALS = "()<>@,;:\\\".[]"
_ATOM = "atom"
_QSTRING = "qstring"
_DOMLIT = "domlit"
_COMMENT = "comment"
_WORDS = (_ATOM, _QSTRING, _DOMLIT)


def _scan822(text: str) -> list[tuple[str, str]]:
    """RFC 822 tokens: (kind, value); kind is atom/qstring/domlit/comment
    or the operator character itself.  Quoted strings are unquoted."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            level, i = 1, i + 1
            buf = []
            while i < n and level:
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if ch == "(":
                    level += 1
                elif ch == ")":
                    level -= 1
                    if not level:
                        i += 1
                        break
                buf.append(ch)
                i += 1
            out.append((_COMMENT, "".join(buf)))
        elif c == '"':
            i += 1
            buf = []
            while i < n:
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                i += 1
                if ch == '"':
                    break
                buf.append(ch)
            out.append((_QSTRING, "".join(buf)))
        elif c == "[":
            buf = [c]
            i += 1
            while i < n:
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    buf.append(text[i:i + 2])
                    i += 2
                    continue
                buf.append(ch)
                i += 1
                if ch == "]":
                    break
            out.append((_DOMLIT, "".join(buf)))
        elif c in _SPECIALS:
            out.append((c, c))
            i += 1
        else:
            buf = []
            while i < n:
                ch = text[i]
                if ch in _SPECIALS or ch in " \t\r\n" or ord(ch) < 32 or ord(ch) == 127:
                    if ch == "\\" and i + 1 < n:
                        buf.append(text[i + 1])
                        i += 2
                        continue
                    break
                buf.append(ch)
                i += 1
            if not buf:          # a lone control character
                out.append((c, c))
                i += 1
            else:
                out.append((_ATOM, "".join(buf)))
    return out


def _parse822(text: str) -> tuple[list[str], int]:
    """(address forms in internal form, count of non-address tokens).

    An address form is a maximal run of words joined by `.` or `@`; two
    adjacent words start a new form (`a b@c` is two forms).  A `<...>`
    group is one form; words in front of it are a phrase (non-address)."""
    toks = _scan822(text)
    addrs: list[str] = []
    non_addr = 0
    i, n = 0, len(toks)
    while i < n:
        kind, val = toks[i]
        if kind == "<":
            j = i + 1
            while j < n and toks[j][0] != ">":
                j += 1
            inner = toks[i + 1:j]
            addrs.append("".join(v for k, v in inner if k != _COMMENT))
            i = j + 1
            continue
        if kind == ">":
            i += 1
            continue
        if kind in _WORDS or kind in ".@":
            buf: list[str] = []
            prev_word = False
            while i < n and (toks[i][0] in _WORDS or toks[i][0] in ".@" or toks[i][0] == _COMMENT):
                k, v = toks[i]
                if k == _COMMENT:       # comments inside an address are dropped
                    non_addr += 1
                    i += 1
                    continue
                is_word = k in _WORDS
                if is_word and prev_word:
                    break
                # a run followed by '<' is a phrase in front of a route address
                buf.append(v)
                prev_word = is_word
                i += 1
            if i < n and toks[i][0] == "<":
                non_addr += 1
                continue
            addrs.append("".join(buf))
            continue
        non_addr += 1
        i += 1
    return addrs, non_addr


class AddressError(ValueError):
    """A MAIL FROM/RCPT TO path that smtpd refuses.  `warn`: Postfix logs
    `warning: Illegal address syntax ...` for it (False only for an
    unterminated `<` or `"`, which the tokenizer rejects silently)."""

    def __init__(self, reason: str, *, warn: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.warn = warn


PathSyntaxError = AddressError


@dataclass(frozen=True)
class Path:
    """A parsed envelope address."""

    raw: str          # the argument as given, e.g. '<"x@y"@z>'
    address: str      # internal form: 'x@y@z'; '' for the null address

    @property
    def null(self) -> bool:
        return self.address == ""

    @property
    def external(self) -> str:
        return external(self.address)

    @property
    def is_bare_postmaster(self) -> bool:
        """RCPT TO:<postmaster> (any case, no domain): always accepted."""
        return self.address.lower() == "postmaster"


def illegal_syntax_warning(namaddr: str, where: str, raw: str) -> str:
    """The text of Postfix's warning for a path that parse_path refuses."""
    return f"Illegal address syntax from {namaddr} in {where} command: {printable(raw)}"


def parse_path(arg: str, sender: bool = False, *, allow_empty: bool | None = None,
               strict_rfc821: bool = False, resolver: Resolver | None = None,
               smtputf8: bool = False) -> str:
    """The internal-form address of a MAIL FROM (`sender=True`: the null
    address `<>` is allowed) or RCPT TO argument; raises AddressError.

    `arg` is the path token (`<user@domain>`, or a bare `user@domain`).
    `strict_rfc821` is strict_rfc821_envelopes.  `resolver` decides the
    domain validity check (default: a resolver without local domains)."""
    return parse(arg, sender, allow_empty=allow_empty, strict_rfc821=strict_rfc821,
                 resolver=resolver, smtputf8=smtputf8).address


def parse(arg: str, sender: bool = False, *, allow_empty: bool | None = None,
          strict_rfc821: bool = False, resolver: Resolver | None = None,
          smtputf8: bool = False) -> Path:
    """Like parse_path, but returns the `Path` (raw and internal forms)."""
    if allow_empty is None:
        allow_empty = sender
    if arg.startswith("<"):
        toks = smtpd_tokens(arg)
        if not toks or toks[0].error:
            raise AddressError("unterminated address", warn=False)
    elif '"' in arg:
        toks = smtpd_tokens(arg)
        if any(t.error for t in toks):
            raise AddressError("unterminated quoted string", warn=False)
    text = arg[1:-1] if len(arg) >= 2 and arg[0] == "<" and arg[-1] == ">" else arg
    if text.startswith("@") and ":" in text:
        text = text[text.index(":") + 1:]
    addrs, non_addr = _parse822(text)
    if len(addrs) > 1 or (strict_rfc821 and (non_addr or not arg.startswith("<"))):
        raise AddressError("more than one address" if len(addrs) > 1 else "not RFC 821")
    address = addrs[0] if addrs else ""
    if not address:
        if not allow_empty:
            raise AddressError("empty address")
        return Path(arg, "")
    if strict_rfc821 and address.startswith("@"):
        raise AddressError("source route")
    res = (resolver or _DEFAULT_RESOLVER).resolve(address)
    if res.error:
        raise AddressError("bad domain")
    if not smtputf8 and not res.domain.isascii():
        raise AddressError("non-ASCII domain")
    return Path(arg, address)


# ---------------------------------------------------------------------------
# Address resolution (trivial-rewrite resolve.c, the class part)

LOCAL = "local"
ALIAS = "virtual_alias"
VIRTUAL = "virtual_mailbox"
RELAY = "relay"
DEFAULT = "default"
FINAL_CLASSES = frozenset({LOCAL, ALIAS, VIRTUAL})


class LookupFailure(Exception):
    """A table behind an address class could not be searched
    (Postfix: RESOLVE_FLAG_FAIL -> `451 4.3.0 Temporary lookup failure`)."""


@dataclass(frozen=True)
class Resolution:
    recipient: str        # resolved address, internal form, always user@domain
    domain: str           # its domain
    cls: str              # LOCAL, ALIAS, VIRTUAL, RELAY or DEFAULT
    routed: bool = False  # the local part still contains @, ! or %
    error: bool = False   # the domain is not a valid hostname or literal

    @property
    def final(self) -> bool:
        return self.cls in FINAL_CLASSES

    @property
    def localpart(self) -> str:
        return self.recipient[:self.recipient.rfind("@")]


DomainTest = Callable[[str], bool]


def _never(_domain: str) -> bool:
    return False


class Resolver:
    """Address class resolution with a small cache.

    `is_local(domain)`: mydestination or an own `[address literal]`
    (resolve_local(); it is given the domain with one trailing dot removed).
    `virtual_alias`, `virtual_mailbox`, `relay`: domain list tests.  Any of
    them may raise LookupFailure."""

    CACHE_SIZE = 512

    def __init__(self, *, myhostname: str = "localhost", is_local: DomainTest = _never,
                 virtual_alias: DomainTest = _never, virtual_mailbox: DomainTest = _never,
                 relay: DomainTest = _never, swap_bangpath: bool = True,
                 percent_hack: bool = True, myorigin: str = "", append_at_myorigin: bool = True,
                 append_dot_mydomain: bool = False, mydomain: str = "",
                 resolve_dequoted: bool = True, resolve_null_domain: bool = False,
                 resolve_numeric_domain: bool = False,
                 empty_address_recipient: str = "MAILER-DAEMON", smtputf8: bool = False):
        self.myhostname = myhostname
        self.is_local = is_local
        self.virtual_alias = virtual_alias
        self.virtual_mailbox = virtual_mailbox
        self.relay = relay
        self.swap_bangpath = swap_bangpath
        self.percent_hack = percent_hack
        self.myorigin = myorigin or myhostname
        self.append_at_myorigin = append_at_myorigin
        self.append_dot_mydomain = append_dot_mydomain
        self.mydomain = mydomain
        self.resolve_dequoted = resolve_dequoted
        self.resolve_null_domain = resolve_null_domain
        self.resolve_numeric_domain = resolve_numeric_domain
        self.empty_address_recipient = empty_address_recipient
        self.smtputf8 = smtputf8
        self._cache: dict[str, Resolution] = {}

    # -- resolve_local() ------------------------------------------------------

    def _local(self, domain: str) -> bool:
        if not domain:
            return False
        if domain.endswith("."):
            domain = domain[:-1]
        if not domain or domain.endswith("."):
            return False
        return bool(self.is_local(domain))

    # -- rewrite_tree() in the "local" context --------------------------------

    def _canonicalize(self, addr: str) -> str:
        if addr == "@":
            return ""
        if "@" not in addr:
            if self.swap_bangpath and "!" in addr:
                site, _, user = addr.partition("!")
                addr = f"{user}@{site}"
            elif self.percent_hack and "%" in addr:
                cut = addr.rfind("%")
                addr = addr[:cut] + "@" + addr[cut + 1:]
            elif self.append_at_myorigin and self.myorigin:
                addr = f"{addr}@{self.myorigin}"
        at = addr.rfind("@")
        if (self.append_dot_mydomain and self.mydomain and at >= 0 and at < len(addr) - 1
                and "." not in addr[at + 1:] and "[" not in addr[at + 1:]):
            addr = f"{addr}.{self.mydomain}"
        if addr.endswith(".") and len(addr) > 1 and addr[-2] not in ".@":
            addr = addr[:-1]
        return addr

    def resolve(self, address: str) -> Resolution:
        """Classify `address` (internal form, not empty)."""
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        res = self._resolve(address)
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        self._cache[address] = res
        return res

    def _resolve(self, address: str) -> Resolution:
        addr = address
        saved_domain: str | None = None
        domain: str | None = None
        for _ in range(100):
            # strip a trailing dot of the domain, not dot-dot or at-dot
            if (addr.endswith(".") and "@" in addr and len(addr) > 1
                    and addr[-2] not in ".@"):
                addr = addr[:-1]
            if self.resolve_null_domain and addr.endswith("@"):
                addr = addr[:-1]
            at = addr.rfind("@")
            if at >= 0:
                dom = addr[at + 1:]
                if dom and not self._local(dom):
                    domain = dom
                    break
                addr = addr[:at]
                saved_domain = dom
            if ("@" in addr or (self.swap_bangpath and "!" in addr)
                    or (self.percent_hack and "%" in addr)):
                addr = self._canonicalize(addr)
                continue
            if not addr:
                addr = self.empty_address_recipient
                continue
            if saved_domain is None:
                addr = f"{addr}@{self.myhostname}"
                continue
            break
        if domain is None:
            addr = f"{addr}@{saved_domain if saved_domain is not None else self.myhostname}"
        at = addr.rfind("@")
        rcpt_domain = addr[at + 1:]
        error = False
        local = domain is None
        if rcpt_domain.startswith("["):
            error = not valid_mailhost_literal(rcpt_domain)
        elif not valid_utf8_hostname(rcpt_domain, self.smtputf8):
            if self.resolve_numeric_domain and valid_hostaddr(rcpt_domain):
                addr = f"{addr[:at + 1]}[{rcpt_domain}]"
                rcpt_domain = f"[{rcpt_domain}]"
                if self._local(rcpt_domain):
                    local = True
            else:
                error = True
        if error:
            return Resolution(addr, rcpt_domain, DEFAULT, error=True)
        first = min((p for p in (addr.find("@"), addr.find("!"), addr.find("%")) if p >= 0),
                    default=-1)
        routed = addr[first + 1:] != rcpt_domain
        if local:
            cls = LOCAL
        elif self.virtual_alias(rcpt_domain):
            cls = ALIAS
        elif self.virtual_mailbox(rcpt_domain):
            cls = VIRTUAL
        elif self.relay(rcpt_domain):
            cls = RELAY
        else:
            cls = DEFAULT
        return Resolution(addr, rcpt_domain, cls, routed=routed)


_DEFAULT_RESOLVER = Resolver()


def is_ip_literal(domain: str) -> bool:
    return domain.startswith("[") and domain.endswith("]")


def literal_address(domain: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address inside a valid `[literal]`, else None."""
    if not is_ip_literal(domain):
        return None
    bare = valid_mailhost_addr(domain[1:-1])
    if bare is None:
        return None
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None
