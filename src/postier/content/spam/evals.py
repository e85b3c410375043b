"""SpamAssassin `eval:` rules implemented natively.

Each function takes (ctx, rule, *args) with the rule's arguments as written
in the .cf file and returns a false value (no hit) or the hit value, like
the Perl plugin method it reproduces.  FUNCTIONS maps the eval name to the
function; an eval name missing here is "unsupported": its rules never hit
and `postier rules check` lists them.

Implemented, by SpamAssassin plugin:
  HeaderEval   check_for_fake_aol_relay_in_rcvd, check_illegal_chars,
               check_for_forged_{hotmail,eudoramail,yahoo,juno,gmail,gw05}_received_headers,
               check_for_no_hotmail_received_headers, check_for_msn_groups_headers,
               check_for_matching_env_and_hdr_from, sorted_recipients, similar_recipients,
               check_for_missing_to_header, check_for_shifted_date, received_within_months,
               subject_is_all_caps, check_for_to_in_subject, check_outlook_message_id,
               check_messageid_not_usable, check_header_count_range,
               check_unresolved_template, check_ratware_name_id, check_ratware_envelope_from,
               gated_through_received_hdr_remover, check_equal_from_domains,
               check_for_unique_subject_id, check_for_faraway_charset_in_headers
  BodyEval     multipart_alternative_difference(_count), check_blank_line_ratio,
               tvd_vertical_words, check_stock_info, check_body_length,
               plaintext_body_length, plaintext_sig_length, plaintext_body_sig_ratio
  MIMEEval     check_for_mime, check_for_mime_html(_only), check_mime_multipart_ratio,
               check_msg_parse_flags, check_for_ascii_text_illegal,
               check_abundant_unicode_ratio, check_for_faraway_charset, check_for_uppercase,
               check_ma_non_text, check_base64_length, check_qp_ratio
  RelayEval    check_for_numeric_helo, check_all_trusted, check_no_relays,
               check_relays_unparseable, check_for_sender_no_reverse,
               check_for_from_domain_in_received_headers, check_for_forged_received_trail,
               check_for_forged_received_ip_helo, helo_ip_mismatch,
               check_for_no_rdns_dotcom_helo, check_for_illegal_ip
  HTMLEval     html_tag_balance, html_image_only, html_image_ratio, html_charset_faraway,
               html_tag_exists, html_test, html_eval, html_text_match,
               html_text_not_match, html_title_subject_ratio, html_range, check_iframe_src
  FreeMail     check_freemail_from, check_freemail_header, check_freemail_replyto,
               check_freemail_body
  WLBLEval     check_mailfrom_matches_rcvd, check_from_in_list, check_replyto_in_list,
               check_to_in_list, check_uri_host_listed, check_from_in_welcomelist (and
               the blocklist/default/to variants, from the rule set's lists)
  ImageInfo    image_count, pixel_coverage, image_to_text_ratio, image_size_exact,
               image_size_range, image_named, image_name_regex
  URIEval      check_uri_truncated
  HTTPSMismatch check_https_http_mismatch

Speed: each rule's arguments are worked out once per rule set for the
functions with a binder (bind(); the engine calls what it returns), what
several rules of a message share is computed once per message (ctx.cache:
the Received dates, the MIME summary, the Received text on one line, ...),
what depends only on a string is remembered across messages (freemail
tests, the domain functions of the URI registry, the enlist_uri_host lists
of a host, a MIME part's header summary, check_equal_from_domains's
domains), the address lists of the stock rules (*@domain) are matched as
string suffixes (_AddrMatcher), a few groups of rules run as one call
(bind_calls: the check_for_shifted_date rules, the HTML evals, nothing
to do without HTML and no image rule without an image, the forged
Received checks of a From domain, nothing to do unless the From address
holds it, and the rules that test
one per-message value: the MIME summary, the image summary, the body
length, the uppercase ratio), similar_recipients's pairs are counted by
group (not pair by pair: 256 addresses cost 2.2 ms that way),
EvalContext.get_list answers a header the message lacks without asking
HeaderView, the address lists' answers are remembered by address, and the
per-line loops of check_for_uppercase, tvd_vertical_words and MIMEEval's
quoted-printable and text-part counts, check_illegal_chars's byte counts,
multipart_alternative_difference's word counts and their comparison,
the Received dates, the common
shape of a date, the clamps and sum of every parsed date (date_seconds,
for the common shape and _parse_date_slow alike), the forged Received
trail, FreeMail's body lines that can hold an address and its anchor URIs,
and check_uri_host_listed's hosts of the URI list run in
postier._native.spameval (twin: postier._pure.spameval).

Parameters read: none.
"""

from __future__ import annotations

import re as ure
import struct
import time as _time
from bisect import bisect_right as _bisect_right
from collections import Counter

from postier.content.spam import bre as re
from postier.content.spam import perlre
from postier.content.spam.headers import plain_name as _plain_name
from postier.content.spam.message import parse_content_type
from postier.content.spam.received import IP, IP_PRIVATE, IPV4_ADDRESS
from postier.content.spam.uri import idn_to_ascii, is_fqdn_valid
from postier.native import load as _load_native

_ev = _load_native("spameval")

FUNCTIONS: dict = {}
# flag combinations computed once (an enum `|` per call costs about a microsecond)
_IA = re.I | re.A
_IAS = re.I | re.A | re.S
_MA = re.M | re.A
_SA = re.S | re.A


def ev(*names):
    def deco(fn):
        for n in names or (fn.__name__,):
            FUNCTIONS[n] = fn
        return fn
    return deco


def _s(b: bytes | None) -> str:
    return "" if b is None else b.decode("latin-1")


def _undef(v: str) -> bool:
    return v == "undef"


# regexes of the eval functions below, compiled once (the same patterns and
# flags as the inline calls they replace)
_HTTP_HOST_I = re.compile(r"^https?://([^/:?#]+)", re.I).match
_HTTPS_HOST_I = re.compile(r"https://([^\s/:?#]+)", re.I).search
_DOTTED4_Z_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+\Z").match
_BRACKETED_RE = re.compile(r"^\[(.*)\]\Z").match
_DOTCOM_HELO_I = re.compile(r"(?:\.|^)(lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com|excite\.com|"
                            r"caramail\.com|cs\.com|aol\.com|msn\.com|yahoo\.com|drizzle\.com)$", re.I).search
_DOTS_SUB = re.compile(r"\.+").sub
_ISO_CHARSET_I = re.compile(r"iso-\S+-\S+\b", re.I).search
_LETTER_I = re.compile(r"[a-z]", re.I).search
_RATIO_SHAPE = re.compile(r"\d{0,3}\.\d{1,3}").fullmatch
_BASE64_CTE = re.compile(r"base64\n?").fullmatch

_NUMS: dict[str, float] = {}


def _num(v) -> float:
    """Perl's numeric value of a string (leading number, else 0)."""
    got = _NUMS.get(v)          # (the rule arguments, strings: keys; numbers are not)
    if got is not None:
        return got
    if isinstance(v, (int, float)):
        return v
    m = re.match(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", v or "")
    got = float(m.group(1)) if m else 0.0
    if len(_NUMS) < 10000:
        _NUMS[v] = got
    return got


IS_IPV4 = re.compile(r"^" + IPV4_ADDRESS.pattern + r"$", re.X | re.A)
_DIGIT = frozenset("0123456789")
IS_IP_PRIVATE = re.compile(r"^(?:" + IP_PRIVATE.pattern + r")$", re.X | _IA)
_IPRE = re.compile(IP, re.A)
_MONTH = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                      "oct", "nov", "dec"), 1)}
_TZ = {"UT": "+0000", "UTC": "+0000", "NDT": "-0230", "AST": "-0400", "ADT": "-0300",
       "NST": "-0330", "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500",
       "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700", "HST": "-1000",
       "AKST": "-0900", "AKDT": "-0800", "HADT": "-0900", "HAST": "-1000", "GMT": "+0000",
       "BST": "+0100", "IST": "+0100", "WET": "+0000", "WEST": "+0100", "CET": "+0100",
       "CEST": "+0200", "EET": "+0200", "EEST": "+0300", "MSK": "+0300", "MSD": "+0400",
       "MET": "+0100", "MEZ": "+0100", "MEST": "+0200", "MESZ": "+0200", "BRST": "-0200",
       "BRT": "-0300", "AEST": "+1000", "AEDT": "+1100", "ACST": "+0930", "ACDT": "+1030",
       "AWST": "+0800", "NZST": "+1200", "NZDT": "+1300", "JST": "+0900", "KST": "+0900",
       "HKT": "+0800", "SGT": "+0800", "PHT": "+0800", "IDT": "+0300"}


_D_COMMA = re.compile(r", *")
_D_SPACE = re.compile(r"\s+", re.A)
_D_DMY = re.compile(r" (\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) ", _IA)
_D_MDY = re.compile(r" (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\d+) \d+:\d+:\d+ (\d{4}) ",
                    _IA)
_D_DMY2 = re.compile(r" (\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2,3}) ", _IA)
_D_TIME = re.compile(r" (\d?\d):(\d\d)(:(\d\d))? ", re.A)
_D_TZNUM = re.compile(r" ([-+]\d{4}) ", re.A)
_D_TZNAME = re.compile(r"\b([A-Z]{2,4}(?:-DST)?)\b", re.A)
_D_TZOFF = re.compile(r"([-+])(\d\d)(\d\d)$")


def parse_rfc822_date(date: str) -> int | None:
    """Util::parse_rfc822_date: seconds since the epoch, or None (the
    common shape of a date is computed by spameval.rfc822_date_fast)."""
    t = _ev.rfc822_date_fast(date)
    if t is False:
        return _parse_date_slow(date)
    return t


def _parse_date_slow(date: str) -> int | None:
    s = " " + date + " "
    s = _D_COMMA.sub(" ", s)
    s = _D_SPACE.sub(" ", s)
    m = _D_DMY.search(s)
    if m:
        dd, mon, yyyy = m.group(1), m.group(2).lower(), m.group(3)
    else:
        m = _D_MDY.search(s)
        if m:
            dd, mon, yyyy = m.group(2), m.group(1).lower(), m.group(3)
        else:
            m = _D_DMY2.search(s)
            if not m:
                return None
            dd, mon, yyyy = m.group(1), m.group(2).lower(), m.group(3)
    s = s[:m.start()] + " " + s[m.end():]
    y = int(yyyy)
    if len(yyyy) == 2 and y < 50:
        y += 2000
    elif len(yyyy) != 4:
        y += 1900
    hh = mm = ss = 0
    m = _D_TIME.search(s)
    if m:
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(4) or 0)
        s = s[:m.start()] + " " + s[m.end():]
    tz = None
    m = _D_TZNUM.search(s)
    if m:
        tz = m.group(1)
    else:
        m = _D_TZNAME.search(s)
        if m and m.group(1) in _TZ:
            tz = _TZ[m.group(1)]
    tz = tz or "-0000"
    # (the clamps and the sum: spameval.date_seconds, as for the common shape)
    m = _D_TZOFF.search(tz)
    zone = (int(m.group(2)) * 60 + int(m.group(3))) * 60 if m else 0
    return _ev.date_seconds(y, _MONTH.get(mon, 0), int(dd), hh, mm, ss,
                            -zone if m and m.group(1) == "-" else zone)


class _MemoRegistry:
    """A postier.content.spam.uri.Registry whose domain functions (pure
    functions of their argument) remember their answers."""

    MAX = 20000

    def __init__(self, rb):
        self._rb = rb
        self._split: dict = {}
        self._u2d: dict = {}
        self._valid: dict = {}

    def __getattr__(self, name: str):
        return getattr(self._rb, name)

    def split_domain(self, domain: str, is_ascii: bool = False) -> tuple[str, str]:
        if is_ascii:
            return self._rb.split_domain(domain, True)
        got = self._split.get(domain)
        if got is None:
            if len(self._split) > self.MAX:
                self._split.clear()
            got = self._split[domain] = self._rb.split_domain(domain)
        return got

    def trim_domain(self, domain: str, is_ascii: bool = False) -> str:
        return self.split_domain(domain, is_ascii)[1]

    def uri_to_domain(self, uri: str):
        try:
            return self._u2d[uri]
        except KeyError:
            pass
        if len(self._u2d) > self.MAX:
            self._u2d.clear()
        got = self._u2d[uri] = self._rb.uri_to_domain(uri)
        return got

    def is_domain_valid(self, dom: str | None, is_ascii: bool = False) -> bool:
        if is_ascii:
            return self._rb.is_domain_valid(dom, True)
        got = self._valid.get(dom)
        if got is None:
            if len(self._valid) > self.MAX:
                self._valid.clear()
            got = self._valid[dom] = self._rb.is_domain_valid(dom)
        return got


def _memo_registry(cr) -> _MemoRegistry:
    m = cr.__dict__.get("_memo_registry")
    if m is None or m._rb is not cr.registry:
        m = cr.__dict__["_memo_registry"] = _MemoRegistry(cr.registry)
    return m


_PLAIN: dict[str, bool] = {}       # request -> a plain header name (EvalContext.get)


def _plain(req: str) -> bool:
    """True for a plain header name (headers.plain_name), remembered."""
    got = _PLAIN[req] = _plain_name(req) is not None
    if len(_PLAIN) > 4096:
        _PLAIN.clear()
    return got


class EvalContext:
    """What eval functions see of a scan (the PerMsgStatus fields they use)."""

    run_calls = staticmethod(_ev.run_calls)     # (Run._evals's loop)

    def __init__(self, run):
        self.run = run
        self.msg = run.msg
        self.hv = run.hv
        self.relays = run.relays
        self.rs = run.cr.rs
        self.rb = _memo_registry(run.cr)
        self.cache: dict = {}
        self._str: dict[str, str] = {}          # get() results (headers do not change)
        self._lists: dict[str, list[str]] = {}  # get_list() results
        self._html: list[dict] | None = None

    # -- PerMsgStatus::get, in the contexts the plugins use
    def get(self, req: str) -> str:
        """Scalar get(): the joined value, "" when missing."""
        v = self._str.get(req)      # (most requests are new to a message: no KeyError)
        if v is None:
            hv = self.hv
            plain = _PLAIN.get(req)
            if plain is None:
                plain = _plain(req)
            if plain:
                # a plain header name whose value() is made (the header phase
                # makes most): get_str's answer, None when the message lacks it
                j = hv.made_values.get(req, hv)
                if j is not hv:
                    v = self._str[req] = "" if j is None else j.decode("latin-1")
                    return v
            # (a header the message lacks: "" without building get()'s answer;
            # no need to ask when get()'s answer is made)
            v = self._str[req] = _s(hv.get_str(req)) if req in hv.made_lists or not hv.lacks(req) \
                else ""
        return v

    def get_or_none(self, req: str) -> str | None:
        hv = self.hv
        if hv.lacks(req) or not hv.defined(req):
            return None
        return self.get(req)

    def get_list(self, req: str) -> list[str]:
        """The values of a request (callers must not modify the list)."""
        v = self._lists.get(req)
        if v is not None:
            return v
        hv = self.hv
        r = hv.made_lists.get(req)      # (get()'s answer, when the header phase made it)
        if r is None:
            # a request of a header the message lacks (most of the address and
            # name ones the evals make): HeaderView's answer, [], without asking it
            if hv.lacks(req):
                v = self._lists[req] = []
                return v
            r = hv.get(req)
        v = self._lists[req] = [_s(x) for x in r]
        return v

    def first(self, req: str) -> str | None:
        if self.hv.lacks(req):
            return None
        v = self.hv.get(req)
        return _s(v[0]) if v else None

    def body(self) -> list[bytes]:
        return self.run.body()

    def rawbody(self) -> list[bytes]:
        return self.run.rawbody()

    def html_all(self) -> list[dict]:
        h = self._html
        if h is None:
            h = self._html = self.msg.html_all()
        return h

    def settings(self, key: str) -> list[str]:
        return self.rs.setting(key)

    def locales_all(self) -> bool:
        v = self.rs.setting("ok_locales")
        return not v or "all" in v[-1].split()

    def all_from_addrs(self) -> list[str]:
        c = self.cache.get("all_from")
        if c is not None:
            return c
        addrs = self.get_list("Resent-From:first:addr")
        if not addrs:
            addrs = []
            for h in ("From:addr", "Envelope-Sender:addr", "Resent-Sender:addr",
                      "X-Envelope-From:addr", "EnvelopeFrom:addr"):
                got = self.get_list(h)
                if got:
                    # (s/\.+/./g changes only runs of two or more dots)
                    addrs += [a if ".." not in a else _DOTS_SUB(".", a) for a in got if a != ""]
        out = list(dict.fromkeys(addrs)) if len(addrs) > 1 else list(addrs)
        self.cache["all_from"] = out
        return out

    def all_to_addrs(self) -> list[str]:
        c = self.cache.get("all_to")
        if c is not None:
            return c
        resent = self.get_list("Resent-To:first:addr") + self.get_list("Resent-Cc:first:addr")
        if resent:
            addrs = resent
        else:
            addrs = []
            for line in self.get_list("Received")[:3]:
                m = re.search(r" for <?(\S+@(\S+?))>?;", line, re.A)
                if m and is_fqdn_valid(idn_to_ascii(m.group(2)), True):
                    addrs.append(m.group(1))
            for h in ("To", "Apparently-To", "Delivered-To", "Envelope-Recipients",
                      "Apparently-Resent-To", "X-Envelope-To", "Envelope-To", "X-Delivered-To",
                      "X-Original-To", "X-Rcpt-To", "X-Real-To", "Cc"):
                addrs += self.get_list(h + ":addr")
        out = list(dict.fromkeys(addrs))
        self.cache["all_to"] = out
        return out


# ================================================================ HeaderEval

def _rcvd_oneline(ctx) -> str:
    """The Received headers joined, runs of white space made one space."""
    c = ctx.cache.get("rcvd1")
    if c is None:
        # s/\s+/ /g: bytes.split() splits on exactly the ASCII \s set
        raw = ctx.hv.get_str("Received")
        words = raw.split()
        if not words:
            c = " " if raw else ""
        else:
            c = b" ".join(words).decode("latin-1")
            if raw[:1].isspace():
                c = " " + c
            if raw[-1:].isspace():
                c += " "
        ctx.cache["rcvd1"] = c
    return c


@ev()
def check_for_fake_aol_relay_in_rcvd(ctx, rule):
    # (the match holds "rly-" in any case, as the Received text does when
    # the one-line text does: collapsing white space keeps it)
    if "rly-" not in ctx.get("Received").lower():
        return 0
    s = _rcvd_oneline(ctx)
    if re.search(r" rly-[a-z][a-z]\d\d\.", s, _IA):
        if re.search(r"/AOL-\d+\.\d+\.\d+\)", s, re.A):
            return 0
        if re.search(r"ESMTP id (?:RELAY|MAILRELAY|MAILIN)", s):
            return 0
        return 1
    return 0


@ev("check_for_unique_subject_id")
def _zero(ctx, rule, *args):
    return 0


@ev()
def check_for_faraway_charset_in_headers(ctx, rule, *args):
    if ctx.locales_all():
        return 0
    return 0



@ev()
def check_illegal_chars(ctx, rule, header, ratio, count):
    # the rule set binds its arguments once (_b_illegal_chars)
    return _b_illegal_chars(header, ratio, count)(ctx, rule)


@ev()
def gated_through_received_hdr_remover(ctx, rule=None):
    c = ctx.cache.get("gated")
    if c is None:
        c = ctx.cache["gated"] = _gated(ctx)
    return c


_GATED_EZMLM = re.compile(r"^contact \S+@\S+; run by ezmlm$", _MA).search
_GATED_DLTO = re.compile(r"^mailing list \S+@\S+", _MA).search
_GATED_QMAIL = re.compile(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+", re.A).search
_GATED_MSN = re.compile(r"from groups\.msn\.com \(\S+\.msn\.com ", re.A).search


def _gated(ctx) -> int:
    txt = ctx.get_or_none("Mailing-List")
    if txt is not None and _GATED_EZMLM(txt):
        dlto = ctx.get("Delivered-To")
        rcvd = ctx.get("Received")
        if _GATED_DLTO(dlto) and _GATED_QMAIL(rcvd):
            return 1
    rcvd = ctx.get_or_none("Received")
    if rcvd is None:
        return 1
    if _GATED_MSN(rcvd):
        return 1
    return 0


# the Received patterns that quote the IP address pattern (a kilobyte):
# compiled once, not looked up by their text per call
_HM_OUTLOOK_IP = re.compile(r"from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \(" + IP + r"\)", re.A).search
_HM_HOTMAIL_IP = re.compile(r"from \S*\.hotmail.com \(\[" + IP + r"\][ \):]", re.A).search
_YAHOO_OK = tuple(re.compile(p, re.A).search for p in (
    r"by web\S+\.mail\S*\.yahoo\.com via HTTP",
    r"by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP",
    r"by smtp\S+\.yahoo\.com with SMTP",
    r"from \[" + IP + r"\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP"))
_JUNO_IP = re.compile(r"from.*\b(?:juno|untd)\.com.*[\[\(]" + IP + r"[\]\)].*by", re.A).search
_JUNO_MAIL_IP = re.compile(r"from.*\bmail\.com.*\[" + IP + r"\].*by", re.A).search
_JUNO_WEBMAIL_IP = re.compile(r"from (webmail\S+\.untd\.com) \(\1 \[" + IP + r"\]\) by", re.A).search


def _forged_hotmail(ctx) -> tuple[int, int]:
    c = ctx.cache.get("hotmail")
    if c is not None:
        return c
    res = (0, 0)
    ctx.cache["hotmail"] = res
    # every way to a hit below needs "hotmail.com" in the Received text or
    # (in any case) in the From address: without it the answer is no hit
    # (the raw Received text holds it when the one-line text does)
    if "hotmail.com" not in ctx.get("Received") and \
            "hotmail.com" not in ctx.get("From:addr").lower():
        return res
    rcvd = _rcvd_oneline(ctx)
    if re.search(r"from mail pickup service by hotmail\.com with Microsoft SMTPSVC;", rcvd):
        return res
    if check_for_msn_groups_headers(ctx, None):
        return res
    ip = ctx.get_or_none("X-Originating-Ip")
    orig = ctx.get_or_none("X-OriginatorOrg")
    ip = 1 if ip is not None and _IPRE.search(ip) else 0
    orig = 1 if orig is not None and re.search(r"hotmail\.com|msonline-outlook", orig) else 0
    if gated_through_received_hdr_remover(ctx):
        return res
    if ip and re.search(r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ \)]", rcvd, re.A):
        return res
    if orig and re.search(r"from \S*\.outbound\.protection\.outlook\.com \(\S+\.outbound\.protection\.outlook\.com[ \)]",
                          rcvd, re.A):
        return res
    if orig and _HM_OUTLOOK_IP(rcvd):
        return res
    if ip and _HM_HOTMAIL_IP(rcvd):
        return res
    if ip and re.search(r"from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;", rcvd, re.A):
        return res
    if ip and re.search(r"from \[66\.218.\S+\] by \S+\.yahoo\.com", rcvd, re.A):
        return res
    if re.search(r"(?:from |HELO |helo=)\S*hotmail\.com\b", rcvd, re.A):
        res = (1, 0)
    else:
        frm = ctx.get("From:addr")
        if not re.search(r"\bhotmail\.com$", frm, _IA):
            return res
        res = (0, 1)
    ctx.cache["hotmail"] = res
    return res


@ev()
def check_for_forged_hotmail_received_headers(ctx, rule):
    return _forged_hotmail(ctx)[0]


@ev()
def check_for_no_hotmail_received_headers(ctx, rule):
    return _forged_hotmail(ctx)[1]


@ev()
def check_for_msn_groups_headers(ctx, rule):
    m = re.search(r"<(\S+)@groups\.msn\.com>", ctx.get("To"), _IA)
    if not m:
        return 0
    listname = m.group(1)
    m = re.search(r"from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b", ctx.get("Received"), re.A)
    if not m:
        return 0
    server = m.group(1)
    if listname == "notifications":
        if not re.search(r"^<\S+@" + server + ">", ctx.get("Message-Id"), re.A):
            return 0
    else:
        if not re.search(r"^<" + listname + r"-\S+@groups\.msn\.com>", ctx.get("Message-Id"), re.A):
            return 0
        if not re.search(listname + r"-bounce@groups\.msn\.com", ctx.get("EnvelopeFrom:addr"), re.A):
            return 0
    return 1


@ev()
def check_for_forged_eudoramail_received_headers(ctx, rule):
    if not re.search(r"\beudoramail\.com$", ctx.get("From:addr"), _IA):
        return 0
    rcvd = re.sub(r"\s+", " ", ctx.get("Received"), flags=re.A)
    ip = ctx.get_or_none("X-Sender-Ip")
    ip = 1 if ip is not None and _IPRE.search(ip) else 0
    if gated_through_received_hdr_remover(ctx):
        return 0
    if ip and re.search(r"by \S*whowhere.com;", rcvd, re.A):
        return 0
    return 1


@ev()
def check_for_forged_yahoo_received_headers(ctx, rule):
    frm = ctx.get("From:addr")
    if not re.search(r"\byahoo\.com$", frm, _IA):
        return 0
    rcvd = ctx.get("Received")
    if ctx.get("Resent-From") != "" and ctx.get("Resent-To") != "":
        x = ctx.get("X-Received")
        if x != "":
            rcvd = x
    rcvd = re.sub(r"\s+", " ", rcvd, flags=re.A)
    if gated_through_received_hdr_remover(ctx):
        return 0
    if re.search(r" rdns=\S+\.yahoo\.com ", ctx.relays.trusted_str, re.A) or \
            re.search(r"^[^\]]+ rdns=\S+\.yahoo\.com ", ctx.relays.untrusted_str, re.A):
        return 0
    for pat in _YAHOO_OK:
        if pat(rcvd):
            return 0
    if re.search(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b", rcvd, re.A) and \
            re.search(r"@reply\.yahoo\.com$", frm, re.I):
        return 0
    if re.search(r"by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+", rcvd, re.A):
        return 0
    return 1


@ev()
def check_for_forged_juno_received_headers(ctx, rule):
    if not re.search(r"\bjuno\.com$", ctx.get("From:addr"), _IA):
        return 0
    if gated_through_received_hdr_remover(ctx):
        return 0
    xorig = ctx.get("X-Originating-IP")
    xmailer = ctx.get("X-Mailer")
    rcvd = ctx.get("Received")
    if xorig != "":
        if not _JUNO_IP(rcvd) and \
                not re.search(r" cookie\.(?:juno|untd)\.com ", rcvd):
            return 1
        if "Juno " not in xmailer:
            return 1
    else:
        if _JUNO_MAIL_IP(rcvd):
            if not re.search(r"\bmail\.com", xmailer, re.A):
                return 1
        elif _JUNO_WEBMAIL_IP(rcvd):
            if not re.search(r"^Webmail Version \d", xmailer, re.A):
                return 1
        else:
            return 1
        if not _IPRE.search(xorig):
            return 1
    return 0


@ev()
def check_for_forged_gmail_received_headers(ctx, rule):
    if not re.search(r"\bgmail\.com$", ctx.get("From:addr"), _IA):
        return 0
    xgms = ctx.get("X-Gm-Message-State")
    xss = ctx.get("X-Google-Smtp-Source")
    xrcvd = ctx.get("X-Received")
    rcvd = ctx.get("Received")
    if re.search(r"by 10\.\S+ with SMTP id \S+", xrcvd, re.A):
        return 0
    if re.search(r"by 2002:a\d\d:\w+:\S+ with SMTP id \S+", xrcvd, re.A):
        return 0
    if re.search(r"by smtp\.googlemail\.com with ESMTPSA id \S+", rcvd, re.A):
        return 0
    if len(xgms) >= 60 and len(xss) >= 60:
        return 0
    return 1


@ev()
def check_for_forged_gw05_received_headers(ctx, rule):
    rcv = ctx.get("Received")
    m = re.search(r"\nfrom\s(\S+)\sby\s(\S+)\swith\sESMTP;\s+\S\S\S,\s+\d+\s+\S\S\S\s+"
                  r"\d{4}\s+\d\d:\d\d:\d\d\s+[-+]*\d{4}\n$", rcv, _SA)
    return 1 if m and "." not in m.group(2) else 0


@ev()
def check_for_matching_env_and_hdr_from(ctx, rule):
    return 1 if ctx.get("EnvelopeFrom:addr").lower() == ctx.get("From:addr").lower() else 0


def _pairs(counts: Counter) -> int:
    return sum(k * (k - 1) // 2 for k in counts.values() if k > 1)


def _recipients(ctx):
    c = ctx.cache.get("recips")
    if c is not None:
        return c
    inputs: list[str] = []
    for h in ("ToCc:addr", "Bcc:addr"):
        inputs += ctx.get_list(h)
        if len(inputs) >= 5:
            break
    address = []
    prev = ""
    for cur in inputs:
        if not cur:
            break
        if cur.lower() != prev.lower():
            address.append(cur)
            prev = cur
        if len(address) == 256:
            break
    srt = len(address) >= 7 and ",".join(address) == ",".join(sorted(address))
    similar = 0.0
    if len(address) >= 5:
        # SpamAssassin counts over every pair: the pairs whose users start
        # alike, and those whose hosts start alike but differ: counted by
        # group (the pairs of a group of k are k(k-1)/2), the same integers
        # (/\@(.*)/s: what follows the first @)
        fqhn = [(a[a.index("@") + 1:] if "@" in a else None) for a in address]
        n = len(address)
        hits = _pairs(Counter([a[:2] for a in address])) + \
            _pairs(Counter([f[:2] if f is not None else None for f in fqhn])) - _pairs(Counter(fqhn))
        similar = hits / (n * (n - 1) // 2)
    c = ctx.cache["recips"] = (srt, similar)
    return c


@ev()
def sorted_recipients(ctx, rule):
    return 1 if _recipients(ctx)[0] else 0


@ev()
def similar_recipients(ctx, rule, mn, mx):
    v = _recipients(ctx)[1]
    return 1 if ((_undef(mn) or v >= _num(mn)) and (_undef(mx) or v < _num(mx))) else 0


@ev()
def check_for_missing_to_header(ctx, rule):
    h = ctx.get("To")
    if h == "":
        h = ctx.get("Apparently-To")
    return 1 if h == "" else 0


def _date_header_time(ctx):
    if "date_time" in ctx.cache:
        return ctx.cache["date_time"]
    t = None
    # (get_headers' values are these with a "\n" added, which rstrip takes;
    # msg.header_all(name) is msg.headers.get(name.lower(), []))
    headers = ctx.msg.headers
    for h in ("resent-date", "date"):
        for d in headers.get(h, ()):
            t = parse_rfc822_date(d.decode("latin-1").rstrip("\n"))
            if t is not None:
                break
        if t is not None:
            break
    ctx.cache["date_time"] = t
    return t


_ASCII_WS = " \t\n\r\f\v"      # Perl's (and re.A's) \s
_RT_LOCAL = re.compile(r"\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)", re.A)
_RT_QMAIL = re.compile(r"qmail \d+ invoked by uid \d+", re.A)
_RT_FETCHMAIL = re.compile(r"\bby localhost with \w+ \(fetchmail-[\d.]+", re.A)
_RT_DATE = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)", re.A)


def _rcvd_times(lines: list[str]) -> list[int]:
    """parse_rfc822_date of each line's Received date, None left out."""
    out, slow = _ev.rcvd_times(lines)
    if slow:
        out = [t for t in (x if type(x) is int else _parse_date_slow(x) for x in out)
               if t is not None]
    return out


def _received_split(ctx) -> tuple[list[str], list[str]]:
    """(the Received lines the dates are taken from, the local delivery
    lines left out: a localhost/qmail first line and a fetchmail one)."""
    c = ctx.cache.get("rcvd_split")
    if c is not None:
        return c
    rcvd = ctx.get("Received")
    received = [x for x in rcvd.split("\n") if x.strip(_ASCII_WS)] if rcvd else []
    local: list[str] = []
    if received:
        # (each pattern searched only when the line holds a string its matches need)
        r0 = received[0]
        if (("localhost" in r0 or "127.0.0.1" in r0) and _RT_LOCAL.search(r0)) or \
                ("qmail " in r0 and _RT_QMAIL.search(r0)):
            local.append(received.pop(0))
        if received and "fetchmail-" in received[0] and _RT_FETCHMAIL.search(received[0]):
            local.append(received.pop(0))
        elif local:
            received.insert(0, local.pop(0))
    c = ctx.cache["rcvd_split"] = (received, local)
    return c


def _received_dates(ctx) -> list[int]:
    """The dates of the Received lines (_received_split's first list)."""
    c = ctx.cache.get("rcvd_dates")
    if c is None:
        # (_ev.rcvd_times: parse_rfc822_date of each line's first _RT_DATE
        # match, compiled; the dates of another shape parsed here)
        received = _received_split(ctx)[0]
        c = ctx.cache["rcvd_dates"] = _rcvd_times(received) if received else []
    return c


def _received_times(ctx):
    """(_received_dates, the latest past date of the local lines or None)."""
    fetch = None
    local = _received_split(ctx)[1]
    if local:
        now = _time.time()
        ft = [t for t in _rcvd_times(local) if now >= t]
        if ft:
            fetch = max(ft)
    return _received_dates(ctx), fetch


def _date_diff(ctx) -> int:
    if "date_diff" in ctx.cache:
        return ctx.cache["date_diff"]
    diff = 0
    d = _date_header_time(ctx)
    if d is not None:
        times = _received_dates(ctx)
        if times:
            diffs = [d - t for t in times]
            if len(diffs) > 1 and diffs[-1] == 0:
                diffs.pop()
            # (the first of the smallest by abs: what a stable sort puts first)
            diff = min(diffs, key=abs)
    ctx.cache["date_diff"] = diff
    return diff


@ev()
def check_for_shifted_date(ctx, rule, mn, mx):
    d = _date_diff(ctx)
    return 1 if ((_undef(mn) or d >= 3600 * _num(mn)) and (_undef(mx) or d < 3600 * _num(mx))) else 0


@ev()
def received_within_months(ctx, rule, mn=None, mx=None):
    import time as _time
    poss = []
    d = _date_header_time(ctx)
    if d is not None:
        poss.append(d)
    times, fetch = _received_times(ctx)
    if times:
        poss.append(times[0])
    if fetch is not None:
        poss.append(fetch)
    if d is not None and times:
        poss.append(d - _date_diff(ctx))
    rcv = sorted(poss, reverse=True)[(len(poss) - 1) // 2] if poss else 0
    diff = _time.time() - rcv
    ok_min = mn is None or _undef(mn) or diff >= 31556952 * (_num(mn) / 12)
    ok_max = mx is None or _undef(mx) or diff < 31556952 * (_num(mx) / 12)
    return 1 if ok_min and ok_max else 0


_CLTFAC = r"[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|windows-1251|georgianps|pt154|tis)[-_a-z0-9]*"


# subject_is_all_caps's and check_equal_from_domains's patterns (compiled once)
_SAC_PREFIX = re.compile(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+", _IA).sub
_SAC_SPACE = re.compile(r"\s", re.A).search
_SAC_UPPER = re.compile(r"[A-Z]").search
_SAC_LOWER = re.compile(r"[a-z]").search
_SAC_CHARSET = re.compile(r"=\?" + _CLTFAC + r"\?", re.I).search
_EFD_AT = re.compile(r"@([^@]*)\Z").search
_EFD_TAIL = re.compile(r"^.+\.([^\.]+\.[^\.]+)$").match


@ev()
def subject_is_all_caps(ctx, rule):
    # (s/^\s+//; s/\s+$//: the ASCII white space at either end; \s+ takes
    # a final newline too, so $ before it leaves nothing else)
    subj = ctx.get("Subject").strip(_ASCII_WS)
    subj = _SAC_PREFIX("", subj)
    if not _SAC_SPACE(subj):
        return 0
    if len(subj) < 10:
        return 0
    if _SAC_CHARSET(ctx.get("Subject:raw")):
        return 0
    # (its [a-zA-Z] letters are some and all upper case: an [A-Z], no [a-z])
    return 1 if _SAC_UPPER(subj) and not _SAC_LOWER(subj) else 0


@ev()
def check_for_to_in_subject(ctx, rule, test):
    full_to = ctx.get("To:addr")
    if full_to == "":
        return 0
    subject = ctx.get("Subject")
    if test == "address":
        if "\0" not in full_to and "\0" not in subject:
            # the address as a back-reference: one regex for every message
            return 1 if _TO_ADDRESS.search(full_to + "\0" + subject) else 0
        return 1 if re.search(r"\b" + re.escape(full_to) + r"\b", subject, _IA) else 0
    if test == "user":
        to = full_to.split("@", 1)[0]         # s/@.*//s
        # (every alternative matches the user name in the subject, in any
        # ASCII case: none can match when the lower-cased subject lacks it)
        if to.lower() not in subject.lower():
            return 0
        if "\0" not in to and "\0" not in subject:
            return 1 if _TO_USER.search(to + "\0" + subject) else 0
        t = re.escape(to)
        pat = (r"^(?:(?:re|fw):\s*(?:\w+\s+)?" + t + r"$|(?-i:" + t + r")\s*[,:;!?-](?:$|\s)|"
               + t + r"$|,\s*" + t + r"[,:;!?-]$)")
        return 1 if re.search(pat, subject, _IA) else 0
    return 0


# check_for_to_in_subject's and check_ratware_envelope_from's regexes with
# the message's values as back-references (on "value NUL subject"), so
# that they compile once, not once per message: the same matches as the
# values quoted into the pattern (re.A: both fold ASCII letters only)
_TO_ADDRESS = re.compile(r"\A(?P<t>[^\0]*)\0(?s:.*?)\b(?P=t)\b", _IA)
_TO_USER = re.compile(r"\A(?P<t>[^\0]*)\0(?:(?:re|fw):\s*(?:\w+\s+)?(?P=t)$|"
                      r"(?-i:(?P=t))\s*[,:;!?-](?:$|\s)|(?P=t)$|,\s*(?P=t)[,:;!?-]$)", _IA)
_RATWARE = re.compile(r"\A(?P<d>[^\0]*)\0(?P<u>[^\0]*)\0(?s:.*?)\b(?P=d).(?P=u)@", _IA)
_RATWARE_NAME = re.compile(r"\A(?P<t>[^\0]*)\0(?s:.*?)\"[^\"]+\"\s*<(?P=t)>")


_OUTLOOK_MID = re.compile(r"^<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@").match
_OUTLOOK_RCVD = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+).*?$", re.A).search


def _outlook_rcvd(rc: str):
    """_OUTLOOK_RCVD(rc): a match ends on the last line (.*?$ crosses no
    newline but a final one) and only its \\s may be the newline before
    that line, so the search starts there, not at every position."""
    return _OUTLOOK_RCVD(rc, max(rc.rfind("\n", 0, len(rc) - 1), 0))


@ev()
def check_outlook_message_id(ctx, rule):
    mid = ctx.get("MESSAGEID")
    m = _OUTLOOK_MID(mid)
    if not m:
        return 0
    token = int(m.group(1), 16)
    x, y, fudge = 0.0023283064365387, 27111902.8329849, 250
    t = parse_rfc822_date(ctx.get("Date")) or 0
    if abs(token - int(t * x + y)) < fudge:
        return 0
    rc = ctx.get("Received")
    m = _outlook_rcvd(rc)
    t = (parse_rfc822_date(m.group(1)) if m else parse_rfc822_date(rc)) or 0
    return 1 if abs(token - int(t * x + y)) >= fudge else 0


@ev()
def check_messageid_not_usable(ctx, rule):
    if re.search(r"<mailto:(?:leave-\S+|\S+-unsubscribe)@\S+>$", ctx.get("List-Unsubscribe"), _IA):
        return 1
    if gated_through_received_hdr_remover(ctx):
        return 1
    rc = ctx.get("Received")
    if "/CWT/DCE)" in rc or "iPlanet Messaging Server" in rc:
        return 1
    return 0


@ev()
def check_header_count_range(ctx, rule, hdr, mn, mx):
    vals = list(dict.fromkeys(ctx.msg.get_headers(hdr)))
    return 1 if _num(mn) <= len(vals) <= _num(mx) else 0


_UNRESOLVED_B = re.compile(rb"%[A-Z][A-Z_-]").search


@ev()
def check_unresolved_template(ctx, rule):
    # (searched in the bytes first: no line can match without a match there)
    if not _UNRESOLVED_B(ctx.hv.get_str("ALL")):
        return 0
    hdrs = ctx.get("ALL")
    for h in hdrs.split("\n"):
        if re.search(r"%[A-Z][A-Z_-]", h) and not re.match(
                r"^(?:X-VMS-To|X-UIDL|X-Face|To|Cc|From|Subject|References|In-Reply-To|"
                r"(?:X-|Resent-|X-Original-)?Message-Id):", h, re.I):
            return 1
    return 0


_RATWARE_MID = re.compile(r"<[A-Z]{28}\.([^>]+?)>").search


@ev()
def check_ratware_name_id(ctx, rule):
    m = _RATWARE_MID(ctx.get("MESSAGEID"))
    if not m:
        return 0
    frm = ctx.get("From")
    if "\0" not in m.group(1) and "\0" not in frm:
        # the value as a back-reference (_RATWARE_NAME): no per-message compile
        return 1 if _RATWARE_NAME.search(m.group(1) + "\0" + frm) else 0
    if re.search(r"\"[^\"]+\"\s*<" + re.escape(m.group(1)) + ">", frm, re.A):
        return 1
    return 0


_SRS_I = re.compile(r"^SRS\d[=+-]", re.I).match
_USER_AT_DOM_S = re.compile(r"^([^@]+)@(.+)$", re.S).match


@ev()
def check_ratware_envelope_from(ctx, rule):
    to = ctx.get("To:addr")
    frm = ctx.get("EnvelopeFrom:addr")
    if frm == "" or to == "":
        return 0
    if _SRS_I(frm):
        return 0
    m = _USER_AT_DOM_S(to)
    if m:
        user, dom = m.group(1), m.group(2)
        dom = ctx.rb.trim_domain(dom)
        if not ctx.rb.is_domain_valid(dom):
            return 0
        # (a match holds the domain and "user@" in frm, in any ASCII case:
        # Latin-1 text, whose lower() is one character for one, has them
        # lowercased too; without them no search)
        low = frm.lower()
        if dom.lower() not in low or (user + "@").lower() not in low:
            return 0
        if "\0" not in dom + user + frm:
            if _RATWARE.search(dom + "\0" + user + "\0" + frm):
                return 1
        elif re.search(r"\b" + re.escape(dom) + "." + re.escape(user) + "@", frm, _IA):
            return 1
    return 0


@ev()
def check_equal_from_domains(ctx, rule):
    fd = _efd_domain(ctx.get("From:addr"))
    if fd == "":
        return 0
    ed = _efd_domain(ctx.get("EnvelopeFrom:addr"))
    if ed == "":
        return 0
    return 1 if fd.lower() != ed.lower() else 0


_EFD_MEMO: dict[str, str] = {}


def _efd_domain(addr: str) -> str:
    """check_equal_from_domains's domain of an address (remembered by
    address: the same senders come back)."""
    got = _EFD_MEMO.get(addr)
    if got is None:
        m = _EFD_AT(addr)
        d = m.group(1) if m else ""
        # s/^.+\.([^\.]+\.[^\.]+)$/$1/: the anchored pattern matches at most
        # once, and what its $ left (a final newline) stays
        t = _EFD_TAIL(d)
        got = d if t is None else t.group(1) + d[t.end():]
        if len(_EFD_MEMO) >= 20000:
            _EFD_MEMO.clear()
        _EFD_MEMO[addr] = got
    return got


# ================================================================ BodyEval

# a maximal run of non-space characters that holds a \w: what Perl's
# grep { /\w/ } split /\s+/ keeps
# (starting only where a run starts: linear time)
_MA_WORDS_A = re.compile(r"(?<!\S)\S*\w\S*", re.A)
_MA_WORDS_U = ure.compile(r"(?<!\S)\S*\w\S*")


_MA_TYPE = re.compile(r"^multipart/alternative\b")
_TEXT_TYPE = re.compile(r"^text\b")


def _madiff(ctx):
    c = ctx.cache.get("madiff")
    if c is not None:
        return c
    res = [0.0, 0, 0]
    ctx.cache["madiff"] = res
    msg = ctx.msg
    ma = msg.find_parts(_MA_TYPE)
    if not ma:
        return res
    summary = _content_summary(msg)
    if len(summary) == 3 and summary[2] == "text/calendar" and summary[1] == "text/html" and \
            summary[0] == "multipart/alternative":
        return res
    for part in ma:
        html: dict[str, int] = {}
        text: dict[str, int] = {}
        for t in part.find_parts(_TEXT_TYPE):
            typ, rnd, chars = t.rendered()
            if typ is None:
                continue
            # the \s+-separated tokens that hold a word character (Perl:
            # Unicode rules for character strings): _MA_WORDS_U/_A's
            # findall, compiled, counted straight into the dict
            if typ == "text/html":
                _ev.ma_counts(rnd, chars, html)
                if not html and "img" in ((t.html_results or {}).get("inside") or {}):
                    html["\n"] = 1
            else:
                _ev.ma_counts(rnd, chars, text)
        orig = len(html)
        if orig == 0:
            continue
        res[1] = orig
        res[2] = len(text)
        # the html words whose count the text matches or exceeds are dropped
        dropped = _ev.ma_dropped(html, text)
        diff = (orig - dropped) / orig * 100
        if diff > res[0]:
            res[0] = diff
    return res


def _content_summary(msg) -> list[str]:
    ret = [[msg.type]]
    search = []
    for i, p in enumerate(msg.body_parts or [], 1):
        search.append((i, p))
    while search:
        idx, p = search.pop(0)
        while len(ret) <= idx:
            ret.append([])
        ret[idx].append(p.type)
        if p.body_parts is not None:
            search[0:0] = [(idx, c) for c in p.body_parts]
    return [",".join(x) for x in ret]


@ev()
def multipart_alternative_difference(ctx, rule, mn, mx):
    d = _madiff(ctx)[0]
    return 1 if ((_num(mn) == 0 or d > _num(mn)) and (mx == "undef" or d <= _num(mx))) else 0


@ev()
def multipart_alternative_difference_count(ctx, rule, ratio, minhtml):
    d, h, t = _madiff(ctx)
    if not h > _num(minhtml):
        return 0
    return 1 if (t / h) > _num(ratio) else 0


@ev()
def check_blank_line_ratio(ctx, rule, mn, mx, minlines=None):
    minlines = int(_num(minlines)) if minlines is not None and _num(minlines) >= 1 else 1
    blank = nlines = 0
    for chunk in ctx.rawbody():
        for line in re.split(rb"(?<=\n)", chunk):
            nlines += 1
            if not re.search(rb"\S", line):
                blank += 1
    ratio = -1 if nlines < minlines else 100 * blank / nlines
    mn, mx = _num(mn), _num(mx)
    return 1 if ((mn == 0 and ratio <= mx) or (mn < ratio <= mx)) else 0


@ev()
def tvd_vertical_words(ctx, rule, mn, mx):
    mn, mx = _num(mn), _num(mx)
    if mx >= 100:
        mx = 101
    v = ctx.cache.get("tvd")
    if v is None:
        v = ctx.cache["tvd"] = _ev.vertical_words(ctx.body())
    return 1 if mn <= v < mx else 0


_STOCK = re.compile(r"(^trad(?:e|ing)date|company(?:name)?|s\w?(?:t\w?o\w?c\w?k|y\w?m(?:\w?b\w?o\w?l)?)|"
                    r"t(?:arget|icker)|(?:opening|current)p(?:rice)?|p(?:rojected|osition)|expectations|"
                    r"weeks?high|marketperformance|(?:year|week|month|day|price)(?:target|estimates?)|"
                    r"sector|r(?:ecommendation|ating))$", re.A)


@ev()
def check_stock_info(ctx, rule, mn):
    v = ctx.cache.get("stock")
    if v is None:
        v = 0
        parts = ctx.msg.find_parts(re.compile(r"^text/plain$"))
        if parts:
            typ, rnd, chars = parts[0].rendered()
            if typ:
                hits = set()
                rx = ure if chars else re
                for m in rx.finditer(r"^\s*([^:\s][^:\n]{2,29})\s*:\s*\S", rnd, re.M):
                    s = re.sub(r"[^a-z]", "", m.group(1).lower())
                    mm = _STOCK.search(s)
                    if mm:
                        hits.add(mm.group(1))
                v = len(hits)
        ctx.cache["stock"] = v
    return 1 if (_num(mn) == 0 or v >= _num(mn)) else 0


@ev()
def check_body_length(ctx, rule, mn):
    return 1 if len(ctx.msg.pristine_body) <= _num(mn) else 0


def _sig_ratio(ctx):
    c = ctx.cache.get("sig")
    if c is not None:
        return c
    c = {}
    parts = ctx.msg.find_parts(re.compile(r"^text/plain"))
    if parts:
        text = parts[0].decode() or b""
        lb, ls = len(text), 0
        for m in re.finditer(rb"^-- ?\r?$", text, re.M):
            if len(text) - m.end() <= 4:
                continue
            lb = m.start()
            ls = len(text) - m.end()
        c = {"body": lb, "sig": ls, "ratio": lb / ls if ls else 10 ** 6}
    ctx.cache["sig"] = c
    return c


@ev()
def plaintext_body_length(ctx, rule, mn, mx=None):
    v = _sig_ratio(ctx).get("body")
    return 1 if v is not None and v >= _num(mn) and (mx is None or v <= _num(mx)) else 0


@ev()
def plaintext_sig_length(ctx, rule, mn, mx=None):
    v = _sig_ratio(ctx).get("sig")
    return 1 if v is not None and v >= _num(mn) and (mx is None or v <= _num(mx)) else 0


@ev()
def plaintext_body_sig_ratio(ctx, rule, mn, mx=None):
    v = _sig_ratio(ctx).get("ratio")
    return 1 if v is not None and v >= _num(mn) and (v <= _num(mx) if mx is not None else True) else 0


# ================================================================ MIMEEval

def _attachments(ctx) -> dict:
    c = ctx.cache.get("mime")
    if c is not None:
        return c
    st = {"mime_base64_count": 0, "mime_base64_encoded_text": 0, "mime_body_html_count": 0,
          "mime_body_text_count": 0, "mime_faraway_charset": 0, "mime_missing_boundary": 0,
          "mime_multipart_alternative": 0, "mime_multipart_ratio": 1.0, "mime_qp_count": 0,
          "mime_qp_long_line": 0, "mime_qp_ratio": 0, "mime_ascii_text_illegal": 0,
          "mime_text_unicode_ratio": 0}
    ctx.cache["mime"] = st
    qp_bytes = qp_count = normal = unicode_ = 0
    part_bytes: dict[int, int] = {}
    part_type: dict[int, str] = {}
    part = -1
    for p in ctx.msg.find_parts(None, False):
        ctype, cte, cd, charset, incs, html_cs = _part_header(p.headers)
        if ctype == "multipart/alternative":
            st["mime_multipart_alternative"] = 1
        for k in incs:                      # _mime_header's counts and flags
            st[k] = st.get(k, 0) + 1 if k in _MIME_COUNTS else 1
        if html_cs is not None:
            st["mime_html_charsets"] = html_cs if "mime_html_charsets" not in st else \
                st["mime_html_charsets"] + " " + html_cs
        if not p.is_leaf():
            continue
        part += 1
        part_type[part] = ctype
        if "attachment" not in cd:
            part_bytes[part] = 0
        raw = p.raw
        if not raw:
            continue
        # SpamAssassin's per-line loop, per part where no pattern can span
        # lines (joined with \n, which none of them matches)
        if st["mime_multipart_alternative"] and "attachment" not in cd and \
                ctype in ("text/plain", "text/html"):
            part_bytes[part] = part_bytes.get(part, 0) + sum(map(len, raw))
        if cte == "quoted-printable":
            # the per-line loop (lines starting with "SPAM: " left out) in
            # postier._native.spameval: the same int/float operations in order
            qp_count, kept, longest, size = _ev.qp_lines(raw, qp_count)
            if kept:
                if longest > 79:
                    st["mime_qp_long_line"] = 1
                qp_bytes += size
        if ctype == "text/plain":
            # the lines holding [\x00\x0d\x80-\xff] and the &#xNNNN;
            # entities (neither spans a line) counted in one compiled pass
            asc = charset is None or charset == "us-ascii"
            uni = cte in ("", "7bit", "8bit")
            if asc or uni:
                size, illegal, subs = _ev.text_part_stats(raw)
                if asc:
                    st["mime_ascii_text_illegal"] += illegal
                if uni:
                    normal += size - 8 * subs
                    unicode_ += subs
    if qp_bytes:
        st["mime_qp_ratio"] = qp_count / qp_bytes
        st["mime_qp_count"] = qp_count
    if normal:
        st["mime_text_unicode_ratio"] = unicode_ / normal
    if st["mime_multipart_alternative"]:
        text = html = None
        for i in range(part, -1, -1):
            if i not in part_bytes:
                continue
            if html is None and part_type[i] == "text/html":
                html = part_bytes[i]
            elif text is None and part_type[i] == "text/plain":
                text = part_bytes[i]
            if html is not None and text is not None:
                break
        if text is not None and html is not None and html > 0:
            st["mime_multipart_ratio"] = text / html
    if any(ctx.msg.mime_boundary_state.values()):       # (int counts)
        st["mime_missing_boundary"] = 1
    return st


_PART_MEMO: dict = {}
_PART_MEMO2: dict = {}
_MIME_COUNTS = frozenset(("mime_body_html_count", "mime_body_text_count", "mime_base64_count",
                          "mime_qp_count", "mime_attachment"))


def _part_header(h: dict) -> tuple:
    """What _attachments takes from a part's headers (h: its decoded values
    by lowercased name): (type, Content-Transfer-Encoding and
    Content-Disposition lowercased, charset lowercased or None, the keys
    _mime_header adds 1 to or sets to 1, the charset it appends to
    mime_html_charsets or None).  A function of the three last values:
    remembered across messages (most parts share a few shapes)."""
    ct = h.get("content-type")
    te = h.get("content-transfer-encoding")
    cd = h.get("content-disposition")
    key = (ct[-1] if ct else None, te[-1] if te else None, cd[-1] if cd else None)
    got = _PART_MEMO.get(key)
    if got is not None:
        return got
    # parse_content_type of the value with get_header's "\n": the same type
    # and charset as without it (every $ of its patterns matches before a
    # final \n) unless the value is empty, so a non-empty value is looked up
    # as the message parser looked it up (its memo: a new multipart
    # boundary is parsed once, not twice)
    last = ct[-1] if ct else None
    if last and b"\n" not in last:
        ctype, _b, charset, _n, _m = parse_content_type([last])
    else:
        ctype, _b, charset, _n, _m = parse_content_type([last + b"\n"] if ct else [])
    # the answer is a function of (type, charset, the two other values):
    # remembered by those too (a boundary makes the first key new)
    key2 = (ctype, charset, key[1], key[2])
    got = _PART_MEMO2.get(key2)
    if got is None:
        got = _part_header1(ctype, charset, te, cd)
        if sum(len(x) for x in key2 if x is not None) <= 512:
            if len(_PART_MEMO2) >= 4096:
                _PART_MEMO2.clear()
            _PART_MEMO2[key2] = got
    if sum(len(x) for x in key if x is not None) <= 512:
        if len(_PART_MEMO) >= 4096:
            _PART_MEMO.clear()
        _PART_MEMO[key] = got
    return got


def _part_header1(ctype: str, charset: str | None, te: list | None, cd: list | None) -> tuple:
    # (get_header's value ends in "\n": rstrip("\n") takes it and any before it)
    cte = te[-1].decode("latin-1").lower().rstrip("\n") if te else ""
    cds = cd[-1].decode("latin-1").lower().rstrip("\n") if cd else ""
    charset = charset.lower() if charset else charset
    st = dict.fromkeys(("mime_body_html_count", "mime_body_text_count", "mime_base64_count",
                        "mime_qp_count"), 0)
    _mime_header(None, st, ctype, cte, cds, charset or "")
    html_cs = st.pop("mime_html_charsets", None)
    return (ctype, cte, cds, charset, tuple(k for k, v in st.items() if v), html_cs)


def _mime_header(ctx, st, ctype, cte, cd, charset):
    if ctype == "text/html":
        st["mime_body_html_count"] += 1
    elif re.match(r"^text", ctype, re.I):
        st["mime_body_text_count"] += 1
    if "base64" in cte:
        st["mime_base64_count"] += 1
    elif "quoted-printable" in cte:
        st["mime_qp_count"] += 1
    if cd and "attachment" in cd:
        st["mime_attachment"] = st.get("mime_attachment", 0) + 1
    if ctype.startswith("text") and "base64" in cte and \
            (not charset or re.search(r"(?:us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|"
                                      r"ascii|iso646-us|us|ibm367|cp367|csascii)", charset)) and \
            not (cd and re.match(r"^(?:attachment|inline)", cd)):
        st["mime_base64_encoded_text"] = 1
    if _ISO_CHARSET_I(charset) and \
            not re.search(r"iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b", charset):
        st["mime_bad_iso_charset"] = 1
    if _LETTER_I(charset):
        st["mime_html_charsets"] = charset if "mime_html_charsets" not in st else \
            st["mime_html_charsets"] + " " + charset


@ev()
def check_for_mime(ctx, rule, test):
    st = _attachments(ctx)
    return 1 if st.get(test) else 0


_TEXT_HTML_I = re.compile(r"^text/html", re.I).match


@ev()
def check_for_mime_html(ctx, rule):
    if _TEXT_HTML_I(ctx.get("Content-Type")):
        return 1
    return 1 if _attachments(ctx)["mime_body_html_count"] > 0 else 0


@ev()
def check_for_mime_html_only(ctx, rule):
    if _TEXT_HTML_I(ctx.get("Content-Type")):
        return 1
    st = _attachments(ctx)
    return 1 if st["mime_body_html_count"] > 0 and st["mime_body_text_count"] == 0 else 0


@ev()
def check_mime_multipart_ratio(ctx, rule, mn, mx):
    r = _attachments(ctx)["mime_multipart_ratio"]
    return 1 if _num(mn) <= r < _num(mx) else 0


_PARSE_FLAGS = {"missing_head_body_separator", "missing_mime_headers",
                "missing_mime_head_body_separator", "mime_epilogue_exists", "truncated_header",
                "mimepart_limit_exceeded"}


@ev()
def check_msg_parse_flags(ctx, rule, typ, typ2=None):
    return 1 if typ in ctx.msg.flags else 0


@ev()
def check_for_ascii_text_illegal(ctx, rule):
    return 1 if _attachments(ctx)["mime_ascii_text_illegal"] > 0 else 0


@ev()
def check_abundant_unicode_ratio(ctx, rule, ratio):
    if not _RATIO_SHAPE(ratio):
        return 0
    return 1 if _attachments(ctx)["mime_text_unicode_ratio"] >= _num(ratio) else 0


@ev()
def check_for_faraway_charset(ctx, rule, *args):
    if ctx.locales_all():
        return 0
    return 0


@ev()
def check_qp_ratio(ctx, rule, mn):
    return 1 if _attachments(ctx)["mime_qp_ratio"] >= _num(mn) else 0


_CT_CHARSET = tuple(re.compile(p, re.I).search
                    for p in (r"charset=\"([^\"]+)\"", r"charset='([^']+)'", r"charset=(\S+)"))
_CT_CHARSETS: dict[str, str | None] = {}
_CLTFAC_FULL = re.compile(_CLTFAC, re.I).fullmatch
_FARAWAY: dict[str, bool] = {}      # _CLTFAC_FULL's answer by charset (a few repeat)


def _faraway(charset: str) -> bool:
    got = _FARAWAY.get(charset)
    if got is None:
        got = _CLTFAC_FULL(charset) is not None
        if len(charset) <= 256:
            if len(_FARAWAY) >= 4096:
                _FARAWAY.clear()
            _FARAWAY[charset] = got
    return got


def _charset_from_ct(t: str | None) -> str | None:
    """The charset of a Content-Type value (remembered by value, across
    messages: a few shapes repeat; None when it names none)."""
    if t is None:
        return None
    try:
        return _CT_CHARSETS[t]
    except KeyError:
        pass
    got = None
    for search in _CT_CHARSET:
        m = search(t)
        if m:
            got = m.group(1)
            break
    if len(t) <= 256:
        if len(_CT_CHARSETS) >= 4096:
            _CT_CHARSETS.clear()
        _CT_CHARSETS[t] = got
    return got


_UC_JIS = re.compile(rb"\x1b\$B.*\x1b\(B", re.S)


@ev()
def check_for_uppercase(ctx, rule, mn, mx):
    mn, mx = _num(mn), _num(mx)
    v = ctx.cache.get("uppercase")
    if v is None:
        st = _attachments(ctx)
        charsets = []
        t = _charset_from_ct(ctx.get_or_none("Content-Type"))
        if t is not None:
            charsets.append(t)
        if "mime_html_charsets" in st:
            charsets += st["mime_html_charsets"].split()
        if any(_faraway(c) for c in charsets):
            ctx.cache["uppercase"] = 0
            return 0
        ln, lower, upper = _ev.uppercase_counts(ctx.body(), _UC_JIS)
        if ln < 200 or upper + lower == 0:
            v = 0
        else:
            v = upper / (upper + lower) * 100
        ctx.cache["uppercase"] = v
    return 1 if mn < v <= mx else 0


@ev()
def check_ma_non_text(ctx, rule):
    for mp in ctx.msg.find_parts(re.compile(r"^multipart/alternative$")):
        for p in mp.find_parts(re.compile("."), True, False):
            if p.type.lower() in ("multipart/related", "application/rtf"):
                continue
            if re.match(r"^text/", p.type, re.I):
                continue
            return 1
    return 0


_ANY_TYPE = re.compile(".")


@ev()
def check_base64_length(ctx, rule, mn, mx=None):
    v = ctx.cache.get("b64len")
    if v is None:
        v = 0
        for p in ctx.msg.find_parts(_ANY_TYPE, True):
            # (the transfer encoding + "\n", lowercased, fullmatches
            # base64\n? exactly when the value lowercased is "base64")
            te = p.headers.get("content-transfer-encoding")
            if not te or te[-1].lower() != b"base64":
                continue
            if _part_header(p.headers)[0] == "application/ics":
                continue
            raw = p.raw
            if raw:
                v = max(v, max(map(len, raw)))
        ctx.cache["b64len"] = v
    if mx is not None and v > _num(mx):
        return 0
    return 1 if v >= _num(mn) else 0


# ================================================================ RelayEval

@ev()
def check_for_numeric_helo(ctx, rule):
    rcvd = ctx.relays.untrusted_str
    if rcvd:
        m = re.search(r"\bhelo=(" + IPV4_ADDRESS.pattern + r")(?=[\000-\040,;\[()<>]|\Z)", rcvd,
                      re.I | re.X | re.A)
        if m and not IS_IP_PRIVATE.match(m.group(1)):
            return 1
    return 0


@ev("check_for_illegal_ip")
def _illegal_ip(ctx, rule):
    return 0


@ev()
def helo_ip_mismatch(ctx, rule):
    for r in ctx.relays.untrusted:
        # (IS_IPV4 matches only what starts with an ASCII digit: most HELO
        # names are not tried)
        if not (r.helo[:1] in _DIGIT and IS_IPV4.match(r.helo) and not IS_IP_PRIVATE.match(r.helo)):
            continue
        m = re.match(r"^(\d+\.\d+\.\d+\.)", r.helo)
        if IS_IPV4.match(r.ip) and not IS_IP_PRIVATE.match(r.ip) and r.helo != r.ip and m and \
                not r.ip.startswith(m.group(1)):
            return 1
    return 0


@ev()
def check_all_trusted(ctx, rule):
    r = ctx.relays
    return 1 if r.trusted and not r.untrusted and not r.num_unparseable else 0


@ev()
def check_no_relays(ctx, rule):
    r = ctx.relays
    return 1 if not r.trusted and not r.untrusted and not r.num_unparseable else 0


@ev()
def check_relays_unparseable(ctx, rule):
    return 1 if ctx.relays.num_unparseable else 0


@ev()
def check_for_sender_no_reverse(ctx, rule):
    u = ctx.relays.untrusted
    if not u:
        return 0
    r = u[-1]
    if "." not in r.rdns or r.ip_private:
        return 0
    return 1


@ev()
def check_for_from_domain_in_received_headers(ctx, rule, domain, desired):
    frm = ctx.get("From:addr")
    if not re.search(r"\b" + re.escape(domain), frm, _IA):
        return 0
    rcvd = ctx.relays.trusted_str + "\n" + ctx.relays.untrusted_str
    if re.search(r" rdns=\S*\b" + domain + r" [^\]]*by=\S*\b" + domain + " ", rcvd, re.A):
        return 1 if desired == "true" else 0
    return 1 if desired != "true" else 0


@ev()
def check_for_no_rdns_dotcom_helo(ctx, rule):
    # (SpamAssassin's loop resets the hit at each public relay: only the
    # last public one counts, looked at alone)
    for r in reversed(ctx.relays.untrusted):
        if r.ip_private:
            continue
        return 1 if _DOTCOM_HELO_I(r.helo) and r.no_reverse_dns else 0
    return 0


def _forged_received(ctx):
    # (the untrusted relays' domains and counts in one compiled pass:
    # postier._native.spameval.forged_received)
    c = ctx.cache.get("forged_rcvd")
    if c is None:
        c = ctx.cache["forged_rcvd"] = _ev.forged_received(ctx.relays.untrusted, IS_IP_PRIVATE.match)
    return c


@ev()
def check_for_forged_received_trail(ctx, rule):
    return 1 if _forged_received(ctx)[0] > 1 else 0


@ev()
def check_for_forged_received_ip_helo(ctx, rule):
    return 1 if _forged_received(ctx)[1] > 0 else 0


# ================================================================ HTMLEval

def _perl_cmp(val, expr: str) -> bool:
    """eval "$val $expr" for the expressions HTMLEval allows (<, >=, == N ...)."""
    m = re.fullmatch(r"\s*(<=|>=|==|!=|<|>)\s*([-+]?\d+(?:\.\d+)?)\s*", expr)
    if not m:
        return False
    op, n = m.group(1), float(m.group(2))
    v = _num(val)
    return {"<": v < n, ">": v > n, "<=": v <= n, ">=": v >= n, "==": v == n, "!=": v != n}[op]


@ev()
def html_tag_balance(ctx, rule, rawtag, rawexpr):
    if not re.fullmatch(r"[a-zA-Z0-9]+", rawtag) or not re.fullmatch(r"[<>=!\-+ 0-9]+", rawexpr):
        return 0
    for h in ctx.html_all():
        ins = h.get("inside") or {}
        if rawtag in ins and _perl_cmp(ins[rawtag], rawexpr):
            return 1
    return 0


@ev()
def html_image_only(ctx, rule, mn, mx):
    for h in ctx.html_all():
        if "img" in (h.get("inside") or {}) and "length" in h and _num(mn) < h["length"] <= _num(mx):
            return 1
    return 0


@ev()
def html_image_ratio(ctx, rule, mn, mx):
    for h in ctx.html_all():
        if "non_space_len" in h and h.get("image_area", 0) > 0:
            r = h["non_space_len"] / h["image_area"]
            if _num(mn) < r <= _num(mx):
                return 1
    return 0


@ev()
def html_charset_faraway(ctx, rule):
    return 0


@ev()
def html_tag_exists(ctx, rule, tag):
    for h in ctx.html_all():
        if tag in (h.get("inside") or {}):
            return 1
    return 0


@ev()
def html_test(ctx, rule, test):
    for h in ctx.html_all():
        if h.get(test):
            return 1
    return 0


@ev()
def html_eval(ctx, rule, test, rawexpr):
    if not re.fullmatch(r"[<>=!\-+ 0-9]+", rawexpr):
        return 0
    for h in ctx.html_all():
        v = h.get(test)
        if v is None:
            continue
        if _perl_cmp(v, rawexpr):
            return 1
    return 0


_PLAIN_CACHE: dict = {}


def _compile_plain(regexp: str):
    try:
        return _PLAIN_CACHE[regexp]
    except KeyError:
        pass
    rx = _PLAIN_CACHE[regexp] = _compile_plain1(regexp)
    return rx


def _compile_plain1(regexp: str):
    try:
        pat = regexp
        mods = ""
        try:
            pat, mods = perlre.split_delimited(regexp)
        except perlre.PerlRegexError:
            pass
        return perlre.compile_pattern(pat, mods)
    except perlre.PerlRegexError:
        return None


def prepare(evals: list) -> None:
    """Compile ahead the regex arguments of the eval rules (the
    (kind, rule, function) list of CompiledRules) that compile them on
    first use: postier.content.spam.engine.CompiledRules.prepare."""
    for _kind, r, fn in evals:
        if fn in (html_text_match, html_text_not_match) and len(r.args) >= 2 \
                and isinstance(r.args[1], str):
            _compile_plain(r.args[1])


def _text_bytes(s: str) -> bytes:
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass")


# a pattern that is only .{N} or .{N,M} (__HTML_TITLE_120: '.{120}') cannot
# match fewer than N bytes: such text is not searched (the engine's first
# searches of a counted repetition cost tens of microseconds)
_DOT_RUN = re.compile(r"\.\{(\d{1,6})(?:,\d*)?\}").fullmatch
_MIN_LEN: dict[str, int] = {}


def _min_len(regexp: str) -> int:
    n = _MIN_LEN.get(regexp)
    if n is None:
        m = _DOT_RUN(regexp)
        n = int(m.group(1)) if m else 0
        if len(_MIN_LEN) > 4096:
            _MIN_LEN.clear()
        _MIN_LEN[regexp] = n
    return n


@ev()
def html_text_match(ctx, rule, text, regexp):
    rec = _compile_plain(regexp)
    if rec is None:
        return 0
    minlen = _min_len(regexp)
    for h in ctx.html_all():
        v = h.get(text)
        if not isinstance(v, list):
            continue
        for s in v:
            if s is not None:
                b = _text_bytes(s)
                if len(b) >= minlen and rec.search(b):
                    return 1
    return 0


@ev()
def html_text_not_match(ctx, rule, text, regexp):
    rec = _compile_plain(regexp)
    if rec is None:
        return 0
    for h in ctx.html_all():
        v = h.get(text)
        if not isinstance(v, list):
            continue
        for s in v:
            if s is not None and not rec.search(_text_bytes(s)):
                return 1
    return 0


@ev()
def html_title_subject_ratio(ctx, rule, ratio):
    subject = ctx.get("Subject")
    if subject == "":
        return 0
    for h in ctx.html_all():
        mx = 0.0
        for s in h.get("title") or []:
            if s and s != "0":
                mx = max(mx, len(s) / len(subject))
        if mx > _num(ratio):
            return 1
    return 0


@ev()
def html_range(ctx, rule, test, mn, mx=None):
    for h in ctx.html_all():
        v = h.get(test)
        if v is None:
            continue
        if mx is None or mx == "inf":
            if v > _num(mn):
                return 1
        elif v == "inf":
            continue
        elif _num(mn) < v <= _num(mx):
            return 1
    return 0


@ev()
def check_iframe_src(ctx, rule):
    for h in ctx.html_all():
        for v in (h.get("uri_detail") or {}).values():
            if (v.get("types") or {}).get("iframe"):
                return 1
    return 0


# ================================================================ FreeMail

_EMAIL_WL = re.compile(r"^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master|"
                       r"undisclosed.*|request-[a-f0-9]{16}|bounced?-|"
                       r"[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})|"
                       r".+=.+=.+)@", re.I | re.S)
_SKIP_ENVFROM = re.compile(r"(?:^(?:post|host|domain)master|^double-bounce|"
                           r"^(?:sentto|owner|return|(?:gr)?bounced?)-.+|-(?:request|bounces?|admin|owner)|"
                           r"\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@", _IAS)


class _FreeMail:
    def __init__(self, ctx):
        doms: set[str] = set()
        wc: list[str] = []
        wl: set[str] = set()
        for line in ctx.settings("freemail_domains"):
            for t in line.split():
                if re.search(r"[^a-zA-Z0-9.*?-]", t):
                    continue
                v = t.lower()
                if "*" in v or "?" in v:
                    wc.append(v.replace(".", "\\.").replace("?", ".").replace("*", "[^.]*"))
                else:
                    doms.add(v)
        for key in ("freemail_welcomelist", "freemail_whitelist"):
            for line in ctx.settings(key):
                for t in line.split():
                    v = t.lower()
                    if re.search(r"\w[.@]\w", v):
                        wl.add(v)
        self.domains = doms
        # (check_freemail_replyto's setting, read once per rule set)
        self.skip_bulk = _num((ctx.settings("freemail_skip_bulk_envfrom") or ["1"])[-1])
        self.wc = re.compile(r"@(?:" + "|".join(wc) + r")$") if wc else None
        self.wl = wl
        self.available = bool(doms or wc)
        self._known: dict[str, bool] = {}      # is_freemail() by address
        # (FreeMail's "(?=.{0,64}@)(?<![local char])" with the two assertions
        # swapped and the look-ahead over local chars and dots only: the same
        # matches, since a match's local part (<= 64 of those) ends at its
        # first "@", but most start positions fail at once instead of after
        # a 64-character scan; -25% on the corpus bodies' "@" lines)
        self.email_re = re.compile(
            r"(?<![a-z0-9!#$%&'*+/=?^_`{|}~-])(?=[a-z0-9!#$%&'*+/=?^_`{|}~.-]{0,64}@)"
            r"([a-z0-9!#$%&'*+/=?^_`{|}~-]+"
            r"(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}"
            + ctx.rb.tlds_re + ")", _IAS)
        # built once: these patterns are kilobytes (the TLD list)
        self.mailto_re = re.compile(r"^(?i:mailto):" + self.email_re.pattern, _IAS)
        self.blank_re = re.compile(r"<?(?<!mailto:)" + self.email_re.pattern +
                                   r"(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)",
                                   _IAS)

    def blank(self, s: str) -> str:
        """blank_re.sub(" ", s)."""
        out = []
        last = 0
        for m in _near_at(self.blank_re, s):
            out.append(s[last:m.start()])
            out.append(" ")
            last = m.end()
        if not out:
            return s
        out.append(s[last:])
        return "".join(out)

    def is_freemail(self, email: str) -> bool:
        got = self._known.get(email)
        if got is None:
            got = self._is_freemail(email)
            if len(self._known) > 20000:
                self._known.clear()
            self._known[email] = got
        return got

    def _is_freemail(self, email: str) -> bool:
        if email == "":
            return False
        if email in self.wl:
            return False
        domain = email[email.rfind("@") + 1:]      # s/.*@//s
        if domain in self.wl:
            return False
        # (_EMAIL_WL only turns a freemail address down: searched only then)
        if not (domain in self.domains or (self.wc is not None and self.wc.search(email) is not None)):
            return False
        return not _EMAIL_WL.search(email)


# the characters of an address's local part and its dots, as _FreeMail's
# patterns match them (ASCII letters in either case)
_LOCAL_DOT = "".join(c for c in map(chr, range(256))
                     if re.fullmatch(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]", c, _IAS))


def _near_at(rx, s: str):
    """rx.finditer(s) for _FreeMail's email_re and blank_re, tried only at
    the positions that can start a match: a match holds an address whose
    local part (<= 64 characters, its look-ahead says) ends at the first
    "@" after the start, and only characters of _LOCAL_DOT come between,
    so it starts at the first of those before that "@" (or at a "<" just
    before it: blank_re's <?) or after one of their dots (the look-behind
    refuses any other); not at every position of a long line.  (A match
    tried at pos sees the text before pos, as finditer's tries do.)"""
    pos = 0
    while True:
        a = s.find("@", pos)
        if a < 0:
            return
        lo = max(pos, a - 64)
        b = lo + len(s[lo:a].rstrip(_LOCAL_DOT))
        m = None
        if b < a:
            if b > pos and s[b - 1] == "<":
                m = rx.match(s, b - 1)
            if m is None:
                m = rx.match(s, b)
            i = s.find(".", b, a)
            while m is None and i >= 0:
                m = rx.match(s, i + 1)
                i = s.find(".", i + 1, a)
        if m is None:
            pos = a + 1
            continue
        yield m
        pos = m.end()


def _fm(ctx) -> _FreeMail:
    fm = ctx.run.cr.__dict__.get("_freemail")
    if fm is None:
        fm = ctx.run.cr.__dict__["_freemail"] = _FreeMail(ctx)
    return fm


_FM_URL_AT = re.compile(r"<?https?://\S{0,255}(?:@|%40)\S{0,255}", _IA)


def _fm_body(ctx) -> dict | None:
    if "fm_body" in ctx.cache:
        return ctx.cache["fm_body"]
    fm = _fm(ctx)
    emails: list[str] = []
    seen: set[str] = set()
    # (the anchors' URIs, not parsed from text: picked by _ev.a_uris)
    for uri in _ev.a_uris(ctx.run.uri_detail()):
        m = fm.mailto_re.match(uri)
        if m:
            e = m.group(1).lower()
            if e not in seen:
                emails.append(e)
            seen.add(e)
            if len(emails) >= 20:
                break
    stop = False
    # FreeMail's _parse_body edits the rendered body lines in place (URLs with
    # an @ and addresses followed by "word:" are blanked); every body rule and
    # body eval that runs afterwards sees the edited text.  Only the lines
    # holding "@" or "%40" can change (no pattern below matches without
    # one): found by _ev.at_lines (memchr), the body copied only when there
    # is one
    lines = ctx.body()
    todo = _ev.at_lines(lines)
    if todo:
        lines = list(lines)
    for li in todo:
        s = lines[li].decode("latin-1")
        if "://" in s:
            s = _FM_URL_AT.sub(" ", s)
        s = fm.blank(s)
        lines[li] = s.encode("latin-1")
        if "@" not in s:
            continue
        for m in _near_at(fm.email_re, s):
            e = m.group(1).lower()
            if e not in seen:
                emails.append(e)
            seen.add(e)
            if len(emails) >= 40:
                stop = True
                break
        if stop:
            break
    if todo:
        ctx.run.set_body(lines)
    body: dict[str, int] = {}
    cnt_all = cnt_fm = 0
    max_emails = _num((ctx.settings("freemail_max_body_emails") or ["5"])[-1])
    max_fm = _num((ctx.settings("freemail_max_body_freemails") or ["3"])[-1])
    skip = _num((ctx.settings("freemail_skip_when_over_max") or ["1"])[-1])
    for e in emails:
        cnt_all += 1
        if cnt_all == max_emails and skip:
            ctx.cache["fm_body"] = None
            return None
        if not fm.is_freemail(e):
            continue
        cnt_fm += 1
        if cnt_fm == max_fm and skip:
            ctx.cache["fm_body"] = None
            return None
        body[e] = 1
    ctx.cache["fm_body"] = body
    return body


def _maybe_re(regex):
    if regex is None:
        return None
    return _compile_plain(regex)


@ev()
def check_freemail_header(ctx, rule, header=None, regex=None):
    fm = _fm(ctx)
    if not fm.available or header is None:
        return 0
    rx = _maybe_re(regex)
    if regex is not None and rx is None:
        return 0
    for e in (a.lower() for a in ctx.get_list(header + ":addr")):
        if fm.is_freemail(e):
            if rx is not None and not rx.search(e.encode("latin-1")):
                continue
            return 1
    return 0


@ev()
def check_freemail_body(ctx, rule, regex=None):
    fm = _fm(ctx)
    if not fm.available:
        return 0
    body = _fm_body(ctx)
    if body is None:
        return 0
    if regex is not None:
        rx = _maybe_re(regex)
        if rx is None:
            return 0
        return 1 if any(rx.search(e.encode("latin-1")) for e in body) else 0
    return 1 if body else 0


@ev()
def check_freemail_from(ctx, rule, regex=None):
    fm = _fm(ctx)
    if not fm.available:
        return 0
    rx = _maybe_re(regex)
    if regex is not None and rx is None:
        return 0
    addrs = set(_from_lc(ctx))
    addrs.discard("")
    for e in addrs:
        if not fm.is_freemail(e):
            continue
        if rx is not None and not rx.search(e.encode("latin-1")):
            continue
        return 1
    return 0


def _fm_replyto(ctx, fm: _FreeMail):
    """check_freemail_replyto's addresses and counts (False: a bulk
    envelope sender, no hit)."""
    if fm.skip_bulk:
        env = ctx.first("EnvelopeFrom")
        if env is not None and _SKIP_ENVFROM.search(env):
            return False
    frm = [a.lower() for a in ctx.get_list("From:addr")]
    rep = [a.lower() for a in ctx.get_list("Reply-To:addr")]
    from_fm = sum(1 for a in frm if fm.is_freemail(a))
    rep_fm = sum(1 for a in rep if fm.is_freemail(a))
    not_in = True
    for f in frm:
        if f in rep:
            not_in = False
    return frm, rep, from_fm, rep_fm, not_in


@ev()
def check_freemail_replyto(ctx, rule, what=None):
    fm = _fm(ctx)
    if not fm.available:
        return 0
    if what is None:
        what = "replyto"
    elif what not in ("replyto", "reply"):
        return 0
    # (what does not depend on `what`: once per message)
    got = ctx.cache.get("fm_replyto")
    if got is None:
        got = ctx.cache["fm_replyto"] = _fm_replyto(ctx, fm)
    if got is False:
        return 0
    frm, rep, from_fm, rep_fm, not_in = got
    if from_fm and rep_fm and not_in:
        return 1
    if what == "replyto":
        if not rep_fm:
            return 0
    else:
        if rep and not rep_fm:
            return 0
        elif not from_fm:
            return 0
    body = _fm_body(ctx)
    if body is None:
        return 0
    if body:
        addrs = rep if what == "replyto" else (rep if rep_fm else frm)
        for b in body:
            for r in addrs:
                if b != r:
                    return 1
    return 0


# ================================================================ WLBLEval

def _addrlist(ctx, name: str) -> dict:
    key = "addrlist:" + name
    lists = ctx.run.cr.__dict__.setdefault("_addrlists", {})
    if key in lists:
        return lists[key]
    d: dict[str, re.Pattern] = {}
    single = {"welcomelist_from": ("welcomelist_from", "whitelist_from"),
              "blocklist_from": ("blocklist_from", "blacklist_from"),
              "welcomelist_to": ("welcomelist_to", "whitelist_to"),
              "blocklist_to": ("blocklist_to", "blacklist_to"),
              "more_spam_to": ("more_spam_to",), "all_spam_to": ("all_spam_to",)}
    for line in ctx.settings("enlist_addrlist"):
        m = re.match(r"^\((.+?)\)\s+(.+)\Z", line, re.S)
        if m and m.group(1) == name:
            for a in m.group(2).split():
                _add_addr(d, a)
    for k in single.get(name, ()):
        for line in ctx.settings(k):
            for a in line.split():
                _add_addr(d, a)
    lists[key] = d
    return d


def _add_addr(d: dict, addr: str) -> None:
    addr = addr.lower()
    r = re.sub(r"[\000\\(]", "_", addr)
    r = re.sub(r"([^*?_a-zA-Z0-9])", r"\\\1", r)
    r = r.replace("?", ".")
    r = re.sub(r"\*+", ".*", r)
    try:
        d[addr] = re.compile("^" + r + "$", re.S)
    except re.error:
        pass


_ANY_CACHE: dict[int, tuple] = {}
_ANY_CACHE_MAX = 64     # lists; then emptied: a reloaded rule set's new lists do not pile up


def _in_list(lst: dict, addr: str) -> bool:
    addr = addr.lower()
    if addr in lst:
        return True
    if not lst:
        return False
    # one alternation of the list's anchored patterns: matches when one of
    # them does (built once per list, keyed by identity: the lists live on
    # the CompiledRules and never change)
    c = _ANY_CACHE.get(id(lst))
    if c is None or c[0] is not lst or c[1] != len(lst):
        try:
            rx = re.compile("|".join("(?:" + x.pattern + ")" for x in lst.values()), re.S)
        except re.error:
            rx = None
        if len(_ANY_CACHE) >= _ANY_CACHE_MAX:
            _ANY_CACHE.clear()      # (each entry holds its list: old rule sets' would stay)
        c = _ANY_CACHE[id(lst)] = (lst, len(lst), rx)
    rx = c[2]
    if rx is None:
        return any(x.search(addr) for x in lst.values())
    return rx.search(addr) is not None


class _AddrMatcher:
    """_in_list for one list, as string tests when every entry of the list
    is a literal address, `*` then a literal or `*@*` then a literal (the
    stock enlist_addrlist lists: *@domain, *@*.domain): `^.*LIT$` (re.S)
    matches exactly the strings that end in LIT, or in LIT and a newline;
    `^.*@.*LIT$` those that do with an @ before that LIT; `^LIT$` the
    string LIT with or without a final newline.  Any other list takes
    _in_list's way."""

    def __init__(self, lst: dict):
        self.lst = lst
        exact: set[str] = set()
        suffixes: list[str] = []
        at_suffixes: list[str] = []
        fast = True
        for key in lst:
            lit = key.lstrip("*")
            if lit != key and lit[1:2] == "*" and lit[0] == "@":
                # *@*LIT: `^.*@.*LIT$` (re.S), an @ somewhere before a final LIT
                lit = lit[1:].lstrip("*")
                if "*" in lit or "?" in lit:
                    fast = False
                    break
                at_suffixes.append(_addr_lit(lit))
                continue
            if "*" in lit or "?" in lit:
                fast = False
                break
            if lit != key:
                suffixes.append(_addr_lit(lit))
            else:
                exact.add(_addr_lit(lit))
        self.fast = fast
        self.exact = exact
        self.suffixes = tuple(suffixes)
        self.at_suffixes = tuple(at_suffixes)
        # match()'s answers by address (fast lists: their string tests are
        # fixed here; senders come back)
        self._known: dict[str, bool] = {}

    def _at(self, a: str) -> bool:
        """Does a *@*LIT entry match a (no final newline)?"""
        if not a.endswith(self.at_suffixes):
            return False
        return any(a.endswith(lit) and "@" in a[:len(a) - len(lit)] for lit in self.at_suffixes)

    def match(self, addr: str) -> bool:
        """_in_list(lst, addr) for an address already lowercased."""
        got = self._known.get(addr)
        if got is None:
            got = self._match(addr)
            if self.fast and len(addr) <= 256:     # (the string tests of a fixed list)
                if len(self._known) >= 20000:
                    self._known.clear()
                self._known[addr] = got
        return got

    def _match(self, addr: str) -> bool:
        lst = self.lst
        if addr in lst:
            return True
        if not lst:
            return False
        if not self.fast:
            return _in_list(lst, addr)
        if addr in self.exact or addr.endswith(self.suffixes) or self._at(addr):
            return True
        if addr.endswith("\n"):
            a = addr[:-1]
            return a in self.exact or a.endswith(self.suffixes) or self._at(a)
        return False


def _addr_lit(lit: str) -> str:
    # _add_addr's first substitution: NUL, backslash and "(" match "_"
    if "\0" in lit or "\\" in lit or "(" in lit:
        return lit.replace("\0", "_").replace("\\", "_").replace("(", "_")
    return lit


def _matcher(cr_dict: dict, ctx, name: str) -> _AddrMatcher:
    ms = cr_dict.get("_addrmatchers")
    if ms is None:
        ms = cr_dict["_addrmatchers"] = {}
    m = ms.get(name)
    if m is None:
        m = ms[name] = _AddrMatcher(_addrlist(ctx, name))
    return m


def _from_lc(ctx) -> list[str]:
    """all_from_addrs lowercased (once per message)."""
    c = ctx.cache.get("all_from_lc")
    if c is None:
        c = ctx.cache["all_from_lc"] = [a.lower() for a in ctx.all_from_addrs()]
    return c


@ev()
def check_from_in_list(ctx, rule, name):
    match = _matcher(ctx.run.cr.__dict__, ctx, name).match
    for a in _from_lc(ctx):
        if match(a):
            return 1
    return 0


@ev()
def check_replyto_in_list(ctx, rule, name):
    rt = ctx.get("Reply-To:addr")
    if rt == "":
        return 0
    return 1 if _matcher(ctx.run.cr.__dict__, ctx, name).match(rt.lower()) else 0


@ev()
def check_to_in_list(ctx, rule, name):
    m = _matcher(ctx.run.cr.__dict__, ctx, name)
    if not m.lst:
        return 0
    return 1 if any(m.match(a.lower()) for a in ctx.all_to_addrs()) else 0


@ev("check_from_in_blocklist", "check_from_in_blacklist")
def check_from_in_blocklist(ctx, rule):
    return check_from_in_list(ctx, rule, "blocklist_from")


@ev("check_to_in_welcomelist", "check_to_in_whitelist")
def check_to_in_welcomelist(ctx, rule):
    return check_to_in_list(ctx, rule, "welcomelist_to")


@ev("check_to_in_blocklist", "check_to_in_blacklist")
def check_to_in_blocklist(ctx, rule):
    return check_to_in_list(ctx, rule, "blocklist_to")


@ev()
def check_to_in_more_spam(ctx, rule):
    return check_to_in_list(ctx, rule, "more_spam_to")


@ev()
def check_to_in_all_spam(ctx, rule):
    return check_to_in_list(ctx, rule, "all_spam_to")


_MFR_DOMAIN = re.compile(r"@([^@]+\.[^@]+)\Z").search


@ev()
def check_mailfrom_matches_rcvd(ctx, rule):
    sender = ctx.get("EnvelopeFrom:addr")
    if sender == "":
        return 0
    m = _MFR_DOMAIN(sender)
    if not m:
        return 0
    addr_dom = m.group(1).lower()
    r = ctx.relays
    relays = [r.untrusted[0]] if r.untrusted else list(r.trusted)
    if not relays:
        return 0
    _h, ad = ctx.rb.split_domain(addr_dom)
    for rl in relays:
        rd = rl.lc_rdns
        if not rd:
            continue
        if ad == ctx.rb.split_domain(rd)[1]:
            return 1
    return 0


def _uri_host_lists(lists: dict, host: str) -> tuple[str, ...]:
    """The names of the enlist_uri_host lists that list the host (the most
    specific of its domains a list names decides, "!" excludes)."""
    m = _BRACKETED_RE(host)
    if m:
        keys = [m.group(1)]
    elif _DOTTED4_Z_RE(host):
        keys = [host]
    elif host:
        keys = []
        h = host
        while True:
            if len(keys) > 10:
                keys.pop(0)
            keys.append(h)
            if "." not in h:
                break
            h = h.split(".", 1)[1]
    else:
        keys = []
    out = []
    for nm, hosts in lists.items():
        for q in keys:
            v = hosts.get(q)
            if v is not None:
                if v:
                    out.append(nm)
                break
    return tuple(out)


@ev()
def check_uri_host_listed(ctx, rule, subname):
    lists = ctx.run.cr.__dict__.get("_urihostlists")
    if lists is None:
        lists = {}
        for line in ctx.settings("enlist_uri_host"):
            m = re.match(r"^\((.+?)\)\s+(.+)\Z", line, re.S)
            if m:
                for host in m.group(2).lower().split():
                    v = 0 if host.startswith("!") else 1
                    lists.setdefault(m.group(1), {})[host.lstrip("!")] = v
        ctx.run.cr.__dict__["_urihostlists"] = lists
    enlisted = ctx.cache.get("urihosts")
    if enlisted is None:
        enlisted = {}
        # the lists a host is in, by host, for the rule set's lifetime; the
        # hosts of the URIs but mailto: ones, each once (_ev.uri_hosts)
        known = ctx.run.cr.__dict__.setdefault("_urihostknown", {})
        for host in _ev.uri_hosts(ctx.run.uri_detail()):
            names = known.get(host)
            if names is None:
                if len(known) > 20000:
                    known.clear()
                names = known[host] = _uri_host_lists(lists, host)
            for nm in names:
                enlisted[nm] = host
        ctx.cache["urihosts"] = enlisted
    return 1 if enlisted.get(subname) else 0


# ================================================================ ImageInfo

_IMAGE_TYPES = re.compile(r"^image/(?:gif|png|jpe?g)$")
_IMAGES_NONE: dict = {"names_all": frozenset()}
for _t in ("all", "gif", "png", "jpeg"):
    _IMAGES_NONE["pc_" + _t] = 0
    _IMAGES_NONE["count_" + _t] = 0
    _IMAGES_NONE["dems_" + _t] = frozenset()


def _images(ctx) -> dict:
    c = ctx.cache.get("images")
    if c is not None:
        return c
    parts = ctx.msg.find_parts(_IMAGE_TYPES, True)
    if not parts:
        # (the same values; the sets are only read)
        info = ctx.cache["images"] = dict(_IMAGES_NONE)
        return info
    info = {"names_all": set()}
    for t in ("all", "gif", "png", "jpeg"):
        info["pc_" + t] = 0
        info["count_" + t] = 0
        info["dems_" + t] = set()
    for p in parts:
        cte = _s(p.get_header("content-transfer-encoding") or b"").lower()
        if not _BASE64_CTE(cte):
            continue
        m = re.search(r"/(\w+)$", p.type, re.A)
        typ = m.group(1) if m else None
        if typ == "jpg":
            typ = "jpeg"
        if typ not in ("gif", "png", "jpeg"):
            continue
        data = p.decode() or b""
        w = h = 0
        if typ == "gif":
            if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
                w, h = struct.unpack("<HH", data[6:10])
        elif typ == "png":
            if data[:8] == b"\x89PNG\r\n\x1a\n":
                pos = 8
                while pos < len(data):
                    chunk = data[pos:pos + 8]
                    if len(chunk) < 8:
                        break
                    ln, ty = struct.unpack(">I4s", chunk)
                    pos += 8
                    if ty == b"IEND":
                        break
                    if ty == b"IHDR" and ln == 13:
                        if len(data) >= pos + 8:
                            w, h = struct.unpack(">II", data[pos:pos + 8])
                        break
        else:
            if data[:2] == b"\xff\xd8":
                pos = 2
                while True:
                    hdr = data[pos:pos + 4]
                    if len(hdr) < 4:
                        break
                    xx, mark, ln = hdr[0], hdr[1], struct.unpack(">H", hdr[2:4])[0]
                    if xx != 0xFF or mark in (0xDA, 0xD9) or ln < 2:
                        break
                    pos += 4
                    block = data[pos:pos + ln - 2]
                    if (0xC0 <= mark <= 0xC3) or (0xC5 <= mark <= 0xC7) or (0xC9 <= mark <= 0xCB) or \
                            (0xCD <= mark <= 0xCF):
                        if len(block) >= 5:
                            h, w = struct.unpack(">HH", block[1:5])
                        break
                    pos += len(block)
        if h and w:
            info["pc_" + typ] += w * h
            info["dems_" + typ].add(f"{h}x{w}")
            if p.name:
                info["names_all"].add(p.name)
        info["count_" + typ] += 1
    for t in ("gif", "png", "jpeg"):
        info["pc_all"] += info["pc_" + t]
        info["count_all"] += info["count_" + t]
        info["dems_all"] |= info["dems_" + t]
    ctx.cache["images"] = info
    return info


def _result_check(mn, mx, value, nomaxequal=False) -> int:
    if value is None:
        return 0
    if value < _num(mn):
        return 0
    if mx is not None and value > _num(mx):
        return 0
    if nomaxequal and mx is not None and value == _num(mx):
        return 0
    return 1


@ev()
def image_count(ctx, rule, typ, mn=None, mx=None):
    if mn is None:
        return 0
    return _result_check(mn, mx, _images(ctx).get("count_" + typ))


@ev()
def pixel_coverage(ctx, rule, typ=None, mn=None, mx=None):
    if typ is None or mn is None:
        return 0
    return _result_check(mn, mx, _images(ctx).get("pc_" + typ))


@ev()
def image_to_text_ratio(ctx, rule, typ=None, mn=None, mx=None):
    if typ is None or mn is None or mx is None:
        return 0
    pc = _images(ctx).get("pc_" + typ, 0)
    if not pc > 0:
        return 0
    textlen = sum(map(len, ctx.body()))
    if not textlen > 0:
        return 0
    return _result_check(mn, mx, textlen / pc, True)


@ev()
def image_size_exact(ctx, rule, typ=None, height=None, width=None):
    if typ is None or height is None or width is None:
        return 0
    return 1 if f"{height}x{width}" in _images(ctx).get("dems_" + typ, set()) else 0


@ev()
def image_size_range(ctx, rule, typ=None, minh=None, minw=None, maxh=None, maxw=None):
    if typ is None or minh is None or minw is None:
        return 0
    for dem in _images(ctx).get("dems_" + typ, set()):
        h, w = (int(x) for x in dem.split("x"))
        if h < _num(minh) or w < _num(minw):
            continue
        if maxh is not None and h > _num(maxh):
            continue
        if maxw is not None and w > _num(maxw):
            continue
        return 1
    return 0


@ev()
def image_named(ctx, rule, name=None):
    return 1 if name is not None and name in _images(ctx)["names_all"] else 0


@ev()
def image_name_regex(ctx, rule, rx=None):
    if rx is None:
        return 0
    try:
        r = re.compile(rx)
    except re.error:
        return 0
    return 1 if any(r.search(n) for n in _images(ctx)["names_all"]) else 0


# ================================================================ URIEval / HTTPSMismatch

@ev()
def check_uri_truncated(ctx, rule):
    ctx.run.uri_detail()
    if ctx.run.cr.uris.truncated_in(ctx.run.uri_detail()):
        return 1
    return 1 if any(h.get("uri_truncated") for h in ctx.html_all()) else 0


_IS_IP = re.compile(r"^" + IP + r"$", re.A)


@ev()
def check_https_http_mismatch(ctx, rule, minanchors=None, maxanchors=None):
    mina = _num(minanchors) if minanchors else 1
    rb = ctx.rb
    for h in ctx.html_all():
        detail = h.get("uri_detail") or {}
        # a hit needs an anchor text holding an https:// host: without one
        # the part cannot answer 1 (its domain work is skipped); an anchor
        # text without "://" (in every case of "https") has none
        if not any("://" in a and _HTTPS_HOST_I(a)
                   for v in detail.values() for a in (v.get("anchor_text") or ())):
            continue
        hit = False
        anchors = 0
        for k, v in detail.items():
            at = v.get("anchor_text")
            if not at:
                continue
            uri = None
            m = _HTTP_HOST_I(k)
            if m:
                uri = m.group(1)
                if _IS_IP.match(uri):
                    continue
                uri = rb.trim_domain(uri)
                d = rb.uri_to_domain(uri)
                if not rb.is_domain_valid(d[0] if d else None):
                    uri = None
            if not uri:
                continue
            anchors += 1
            for a in at:
                m = _HTTPS_HOST_I(a)
                if m:
                    https = m.group(1)
                    if not _IS_IP.match(https):
                        https = rb.trim_domain(https)
                        if not rb.is_domain_valid(https):
                            https = None
                    if not https:
                        continue
                    if uri == https:
                        continue
                    hit = True
                    break
        if hit and anchors >= mina and (maxanchors is None or anchors < _num(maxanchors)):
            return 1
    return 0


@ev()
def check_https_ip_mismatch(ctx, rule):
    for h in ctx.html_all():
        for k, v in (h.get("uri_detail") or {}).items():
            if not re.match(r"^https?:/*(?:[^@/]+@)?\d+\.\d+\.\d+\.\d+", k, re.I):
                continue
            for a in v.get("anchor_text") or []:
                if re.match(r"^https:/*(?:[^@/]+@)?\d+\.\d+\.\d+\.\d+", a, re.I):
                    continue
                if re.search("https:", a, re.I):
                    return 1
    return 0


@ev()
def check_for_http_redirector(ctx, rule):
    rb = ctx.rb
    for u in ctx.run.uri_list():
        s = u.decode("latin-1")
        while True:
            m = re.match(r"^https?://([^/:?]+).+?(https?:/{0,2}?([^/:?]+).*)$", s, re.I)
            if not m:
                break
            redir, dest = m.group(1), m.group(3)
            s = m.group(2)
            d1 = rb.uri_to_domain(redir)
            d2 = rb.uri_to_domain(dest)
            redir = d1[0] if d1 else redir
            dest = d2[0] if d2 else dest
            if redir == dest:
                continue
            return 1
    return 0


# ================================================================ binding
#
# A binder takes a rule's arguments once (when the rule set is prepared) and
# returns a function(ctx, rule) with the arguments' numbers, regexes and
# comparisons worked out: the same result as FUNCTIONS[name](ctx, rule,
# *args) for every message.  bind() falls back to the plain call.

BINDERS: dict = {}


def _binds(fn):
    def deco(b):
        BINDERS[fn] = b
        return b
    return deco


def bind(fn, rule) -> tuple:
    """(function, args) to call as function(ctx, rule, *args) for the rule."""
    b = BINDERS.get(fn)
    if b is not None:
        try:
            return b(*rule.args), ()
        except TypeError:           # wrong argument count: the plain call fails alike
            pass
    return fn, tuple(rule.args)


# ---------------------------------------------------------------- groups
#
# Some evals of an area run as one call (bind_calls): the rules of a group
# are worked out where the first of them stands, which gives the same hits
# because what they read does not change while the evals of an area run
# (the only edit, FreeMail's of the rendered body, is not read by them).

# 0 on a message without HTML whatever the arguments: each loops over
# ctx.html_all() (and fails only where the loop would)
_HTML_LOOPS = {html_range, html_image_only, html_image_ratio, html_tag_exists, html_test,
               html_tag_balance, html_eval, html_text_match, html_text_not_match,
               html_title_subject_ratio, html_charset_faraway}


def _html_img(html: list) -> bool:
    """Can an html_image_only rule hit (a part with an img tag inside)?"""
    try:
        return any("img" in (h.get("inside") or {}) for h in html)
    except Exception:   # noqa: BLE001 - then the calls, which fail alike
        return True


def _html_area(html: list) -> bool:
    """Can an html_image_ratio rule hit (a part with text and image area)?"""
    try:
        return any("non_space_len" in h and h.get("image_area", 0) > 0 for h in html)
    except Exception:   # noqa: BLE001 - then the calls, which fail alike
        return True


def _html_group(calls: list):
    # the calls without the image rules that cannot hit (most HTML has no
    # image): one list per answer of _html_img and _html_area, made here
    need = {id(c): getattr(c[2], "html_needs", None) for c in calls}
    lists = {(img, area): [c for c in calls if (need[id(c)] != "img" or img) and
                           (need[id(c)] != "area" or area)]
             for img in (False, True) for area in (False, True)}

    def g(ctx, rule):
        html = ctx.html_all()
        if html:
            _ev.run_calls(lists[_html_img(html), _html_area(html)], ctx, ctx.run.values)
        return 0
    return g


def _shifted_group(members: list):
    # (name, lo, hi) of each rule: _b_shifted_date's test, one date
    # difference.  The bounds cut the line into intervals [bps[j-1], bps[j])
    # on each of which every test has one answer: the names hit on each,
    # in rule order, worked out here, and the difference's interval found
    # by bisection instead of testing each rule
    bps = sorted({x for _n, lo, hi in members for x in (lo, hi) if x is not None})
    hits = [[name for name, lo, hi in members
             if (lo is None or (j > 0 and lo <= bps[j - 1])) and
             (hi is None or (j < len(bps) and hi >= bps[j]))]
            for j in range(len(bps) + 1)]

    def g(ctx, rule):
        d = ctx.cache.get("date_diff")
        if d is None:
            d = _date_diff(ctx)
        values = ctx.run.values
        for name in hits[_bisect_right(bps, d)]:
            if name not in values:
                values[name] = 1
        return 0
    return g


# no hit unless the From address holds the domain (in any case): each tests
# /\bDOMAIN$/i on it first (the hotmail pair: or the Received text holds it)
_FROM_DOMAIN = {check_for_forged_gmail_received_headers: "gmail.com",
                check_for_forged_yahoo_received_headers: "yahoo.com",
                check_for_forged_juno_received_headers: "juno.com",
                check_for_forged_eudoramail_received_headers: "eudoramail.com",
                check_for_forged_hotmail_received_headers: "hotmail.com",
                check_for_no_hotmail_received_headers: "hotmail.com"}


def _from_domain_group(members: list):
    # members: (domain, call) with call as run_calls takes it
    def g(ctx, rule):
        low = ctx.get("From:addr").lower()
        todo = [c for d, c in members if d in low]
        if len(todo) < len(members) and "hotmail.com" in ctx.get("Received"):
            todo = [c for d, c in members if d in low or d == "hotmail.com"]
        if todo:
            _ev.run_calls(todo, ctx, ctx.run.values)
        return 0
    return g


# always 0 (SpamAssassin's answer when ok_locales is "all", and without the
# charset tables otherwise): no call made
_NEVER = {check_for_faraway_charset_in_headers, check_for_faraway_charset, html_charset_faraway, _zero}

# the address-list evals: no hit with an empty list (the lists are the rule
# set's: an empty one stays empty); by the list each reads
_LIST_OF = {check_from_in_blocklist: "blocklist_from", check_to_in_welcomelist: "welcomelist_to",
            check_to_in_blocklist: "blocklist_to", check_to_in_more_spam: "more_spam_to",
            check_to_in_all_spam: "all_spam_to"}
_LIST_NAMED = {check_from_in_list, check_replyto_in_list, check_to_in_list}


def _list_name(fn, r) -> str | None:
    if fn in _LIST_OF and not r.args:
        return _LIST_OF[fn]
    if fn in _LIST_NAMED and len(r.args) == 1:
        return r.args[0]
    return None


def _lists_group(members: list):
    # members: (list name, call); the calls of the non-empty lists worked out
    # on the first message (kept on the CompiledRules: the lists are its)
    def g(ctx, rule):
        memo = ctx.run.cr.__dict__.setdefault("_list_calls", {})
        todo = memo.get(id(members))
        if todo is None or todo[0] is not members:
            todo = memo[id(members)] = (members, [c for name, c in members if _addrlist(ctx, name)])
        if todo[1]:
            _ev.run_calls(todo[1], ctx, ctx.run.values)
        return 0
    return g


def _value_group(value, members: list):
    # members: (name, test) of the calls whose binder marked them per_msg =
    # (value, test): each hit is a function of one per-message value
    # (value(ctx), computed once) and of its test, as its bound call tests it
    if value is _attachments:
        def g(ctx, rule):
            st = _attachments(ctx)
            values = ctx.run.values
            for name, test in members:
                if st.get(test) and name not in values:
                    values[name] = 1
            return 0
    elif value is _images:
        def g(ctx, rule):
            info = _images(ctx)
            values = ctx.run.values
            for name, (key, nmn, nmx) in members:
                v = info.get(key)
                if v is None or v < nmn or (nmx is not None and v > nmx):
                    continue
                if name not in values:
                    values[name] = 1
            return 0
    elif value is check_for_uppercase:
        # (as each bound call: the first works the value out and answers
        # as check_for_uppercase does, the others compare)
        def g(ctx, rule):
            values = ctx.run.values
            for name, (mn, mx, nmn, nmx) in members:
                v = ctx.cache.get("uppercase")
                try:
                    hit = check_for_uppercase(ctx, rule, mn, mx) if v is None else nmn < v <= nmx
                except Exception:   # noqa: BLE001 - a failing eval is "no hit" (run_calls)
                    continue
                if hit and name not in values:
                    values[name] = 1
            return 0
    else:       # _body_len
        def g(ctx, rule):
            n = len(ctx.msg.pristine_body)
            values = ctx.run.values
            for name, most in members:
                if n <= most and name not in values:
                    values[name] = 1
            return 0
    return g


def _shifted_bounds(args: list) -> tuple | None:
    if len(args) != 2:
        return None
    mn, mx = args
    return (None if _undef(mn) else 3600 * _num(mn), None if _undef(mx) else 3600 * _num(mx))


def bind_calls(todo: list) -> list:
    """The (name, rule, function, args) calls run_calls makes for the
    (kind, rule, function) entries of an area, in order: each rule as bind()
    makes it, except that the check_for_shifted_date rules are one call
    (one date difference, compared with each rule's bounds) and so are the
    HTML evals of _HTML_LOOPS (nothing to do without HTML, no image rule
    without an image), the forged
    Received checks of _FROM_DOMAIN (nothing to do unless the From address
    holds their domain), the address-list evals (those of an empty list
    left out) and the calls whose binder marked them as a test of one
    per-message value (_value_group: check_for_mime's MIME summary,
    image_count's and pixel_coverage's image summary, check_body_length's
    length), each group where its first rule stands; the evals of _NEVER
    (always 0) make no call."""
    shifted = []
    html = []
    fdom = []
    lists = []
    per_msg: dict = {}          # value function -> [(name, test)], and id(rule) -> value
    for _k, r, fn in todo:
        if fn in BINDERS and fn not in _HTML_LOOPS and fn not in _FROM_DOMAIN and \
                _list_name(fn, r) is None:
            b = bind(fn, r)[0]
            pm = getattr(b, "per_msg", None)
            if pm is not None:
                per_msg.setdefault(pm[0], []).append((r.name, pm[1]))
                per_msg[id(r)] = pm[0]
    for _k, r, fn in todo:
        if fn is check_for_shifted_date and _shifted_bounds(r.args) is not None:
            shifted.append(r)
        elif fn in _HTML_LOOPS:
            html.append(r)
        elif fn in _FROM_DOMAIN:
            fdom.append((_FROM_DOMAIN[fn], (r.name, r, *bind(fn, r))))
        elif _list_name(fn, r) is not None:
            lists.append((_list_name(fn, r), (r.name, r, *bind(fn, r))))
    in_shifted = {id(x) for x in shifted}
    calls: list = []
    placed: set = set()
    for _k, r, fn in todo:
        if fn in _NEVER:
            continue
        if len(lists) > 1 and _list_name(fn, r) is not None:
            if "lists" not in placed:
                placed.add("lists")
                calls.append((r.name, r, _lists_group(lists), ()))
            continue
        if len(fdom) > 1 and fn in _FROM_DOMAIN:
            if "fdom" not in placed:
                placed.add("fdom")
                calls.append((r.name, r, _from_domain_group(fdom), ()))
            continue
        if len(shifted) > 1 and id(r) in in_shifted:
            if "shifted" not in placed:
                placed.add("shifted")
                calls.append((r.name, r, _shifted_group(
                    [(x.name, *_shifted_bounds(x.args)) for x in shifted]), ()))
            continue
        value = per_msg.get(id(r))
        if value is not None and len(per_msg[value]) > 1:
            if value not in placed:
                placed.add(value)
                calls.append((r.name, r, _value_group(value, per_msg[value]), ()))
            continue
        if len(html) > 1 and fn in _HTML_LOOPS:
            if "html" not in placed:
                placed.add("html")
                fns = {id(x): f for _k2, x, f in todo}
                calls.append((r.name, r, _html_group(
                    [(x.name, x, *bind(fns[id(x)], x)) for x in html]), ()))
            continue
        calls.append((r.name, r, *bind(fn, r)))
    return calls


@_binds(check_illegal_chars)
def _b_illegal_chars(header, ratio, count):
    # check_illegal_chars with the header name and numbers worked out once
    if not header.endswith(":raw"):
        header += ":raw"
    nratio, ncount = _num(ratio), _num(count)
    subject = header.lower() == "subject:raw"
    whole = header == "ALL:raw"

    def f(ctx, rule):
        hv = ctx.hv
        if whole:
            raw = hv.value(header)
            if not raw or raw.isspace():        # (not raw.strip())
                return 0
        else:
            raw = hv.get_str(header)
            if not hv.get(header) or not raw or raw.isspace():
                return 0
        # (the control bytes other than TAB, LF, CR, and those plus 0x7f-0xff,
        # counted in one compiled pass)
        ctrl, illegal = _ev.illegal_counts(raw)
        if not raw.isascii():
            try:
                raw.decode("utf-8")
                valid = True
            except UnicodeDecodeError:
                valid = False
            if valid and ctrl == 0:
                return 0
        if illegal > 0 and subject:
            if raw.count(b"\xa2") + raw.count(b"\xa3") + raw.count(b"\xae") == 1:
                illegal -= 1
        return 1 if (illegal / len(raw)) >= nratio and illegal >= ncount else 0
    return f


@_binds(check_for_shifted_date)
def _b_shifted_date(mn, mx):
    lo = None if _undef(mn) else 3600 * _num(mn)
    hi = None if _undef(mx) else 3600 * _num(mx)

    def f(ctx, rule):
        d = ctx.cache.get("date_diff")      # (an int once _date_diff has run)
        if d is None:
            d = _date_diff(ctx)
        return 1 if ((lo is None or d >= lo) and (hi is None or d < hi)) else 0
    return f


@_binds(html_range)
def _b_html_range(test, mn, mx=None):
    nmn = _num(mn)
    open_ended = mx is None or mx == "inf"
    nmx = 0 if open_ended else _num(mx)

    def f(ctx, rule):
        for h in ctx.html_all():
            v = h.get(test)
            if v is None:
                continue
            if open_ended:
                if v > nmn:
                    return 1
            elif v == "inf":
                continue
            elif nmn < v <= nmx:
                return 1
        return 0
    return f


@_binds(html_image_only)
def _b_html_image_only(mn, mx):
    nmn, nmx = _num(mn), _num(mx)

    def f(ctx, rule):
        for h in ctx.html_all():
            if "img" in (h.get("inside") or {}) and "length" in h and nmn < h["length"] <= nmx:
                return 1
        return 0
    f.html_needs = "img"        # (no hit unless _html_img: _html_group)
    return f


@_binds(html_image_ratio)
def _b_html_image_ratio(mn, mx):
    nmn, nmx = _num(mn), _num(mx)

    def f(ctx, rule):
        for h in ctx.html_all():
            if "non_space_len" in h and h.get("image_area", 0) > 0:
                r = h["non_space_len"] / h["image_area"]
                if nmn < r <= nmx:
                    return 1
        return 0
    f.html_needs = "area"       # (no hit unless _html_area: _html_group)
    return f


def _cmp_fn(expr: str):
    """_perl_cmp(val, expr) as a function of val."""
    m = re.fullmatch(r"\s*(<=|>=|==|!=|<|>)\s*([-+]?\d+(?:\.\d+)?)\s*", expr)
    if not m:
        return lambda val: False
    op, n = m.group(1), float(m.group(2))
    return {"<": lambda v: _num(v) < n, ">": lambda v: _num(v) > n,
            "<=": lambda v: _num(v) <= n, ">=": lambda v: _num(v) >= n,
            "==": lambda v: _num(v) == n, "!=": lambda v: _num(v) != n}[op]


@_binds(html_tag_balance)
def _b_html_tag_balance(rawtag, rawexpr):
    if not re.fullmatch(r"[a-zA-Z0-9]+", rawtag) or not re.fullmatch(r"[<>=!\-+ 0-9]+", rawexpr):
        return lambda ctx, rule: 0
    cmp = _cmp_fn(rawexpr)

    def f(ctx, rule):
        for h in ctx.html_all():
            ins = h.get("inside") or {}
            if rawtag in ins and cmp(ins[rawtag]):
                return 1
        return 0
    return f


@_binds(html_eval)
def _b_html_eval(test, rawexpr):
    if not re.fullmatch(r"[<>=!\-+ 0-9]+", rawexpr):
        return lambda ctx, rule: 0
    cmp = _cmp_fn(rawexpr)

    def f(ctx, rule):
        for h in ctx.html_all():
            v = h.get(test)
            if v is None:
                continue
            if cmp(v):
                return 1
        return 0
    return f


def _b_result_check(key_prefix: str):
    def binder(typ, mn=None, mx=None):
        if mn is None:
            return lambda ctx, rule: 0
        nmn = _num(mn)
        nmx = None if mx is None else _num(mx)
        key = key_prefix + typ

        def f(ctx, rule):
            value = _images(ctx).get(key)
            if value is None or value < nmn or (nmx is not None and value > nmx):
                return 0
            return 1
        f.per_msg = (_images, (key, nmn, nmx))      # (_value_group's test)
        return f
    return binder


BINDERS[image_count] = _b_result_check("count_")


@_binds(pixel_coverage)
def _b_pixel_coverage(typ=None, mn=None, mx=None):
    if typ is None:
        return lambda ctx, rule: 0
    return _b_result_check("pc_")(typ, mn, mx)


def _body_len(ctx) -> int:
    return len(ctx.msg.pristine_body)


@_binds(check_body_length)
def _b_body_length(mn):
    n = _num(mn)

    def f(ctx, rule):
        return 1 if len(ctx.msg.pristine_body) <= n else 0
    f.per_msg = (_body_len, n)
    return f


@_binds(check_for_mime)
def _b_for_mime(test):
    def f(ctx, rule):
        return 1 if _attachments(ctx).get(test) else 0
    f.per_msg = (_attachments, test)
    return f


@_binds(html_tag_exists)
def _b_html_tag_exists(tag):
    def f(ctx, rule):
        for h in ctx.html_all():
            if tag in (h.get("inside") or {}):
                return 1
        return 0
    return f


@_binds(html_test)
def _b_html_test(test):
    def f(ctx, rule):
        for h in ctx.html_all():
            if h.get(test):
                return 1
        return 0
    return f


@_binds(check_for_uppercase)
def _b_for_uppercase(mn, mx):
    nmn, nmx = _num(mn), _num(mx)

    def f(ctx, rule):
        v = ctx.cache.get("uppercase")
        if v is None:                       # the first call works the value out
            return check_for_uppercase(ctx, rule, mn, mx)
        return 1 if nmn < v <= nmx else 0
    f.per_msg = (check_for_uppercase, (mn, mx, nmn, nmx))
    return f


@_binds(check_freemail_header)
def _b_freemail_header(header=None, regex=None):
    if header is None:
        return lambda ctx, rule: 0
    try:
        rx = _maybe_re(regex)
    except Exception:   # noqa: BLE001 - then the plain call (which fails alike: no hit)
        raise TypeError(regex) from None
    if regex is not None and rx is None:
        return lambda ctx, rule: 0
    key = header + ":addr"

    def f(ctx, rule):
        fm = _fm(ctx)
        if not fm.available:
            return 0
        for a in ctx.get_list(key):
            e = a.lower()
            if fm.is_freemail(e):
                if rx is not None and not rx.search(e.encode("latin-1")):
                    continue
                return 1
        return 0
    return f
