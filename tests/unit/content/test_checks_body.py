"""body_checks and the MIME-level rejections through the cleanup stage:
every action on body lines, body_checks_size_limit, long lines, huge
bodies, malformed MIME and the strict_* options; and the whole-run fast
path (postier.maps.patterns.LineScanner) against the line-by-line path.

Expected replies and log lines were taken from a private Postfix 3.7.11
instance fed the same tables and messages (see test_checks.py for the log
abbreviations).
"""

from __future__ import annotations

import random

import pytest

from postier import log
from postier.cleanup import Cleanup, CleanupSettings, Rcpt
from postier.config import Config
from postier.content import checks as checks_mod
from postier.maps import clear_cache
from postier.maps import patterns as P

BASE = """\
compatibility_level = 3.6
myhostname = mx.example.test
mydomain = example.test
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost, $mydomain
mynetworks = 127.0.0.0/8
smtputf8_enable = no
"""
RECEIVED = (b"Received: from c.test (c.test [192.0.2.9])\n"
            b"\tby mx.example.test (Postfix) with ESMTP id QID\n"
            b"\tfor <u@example.test>; Sat, 28 Nov 2026 05:51:02 +0000 (UTC)\n")
TAIL = " from c.test[192.0.2.9]; from=<s@remote.test> to=<u@example.test> proto=ESMTP helo=<c.test>"
MIME_TAIL = " from c.test[192.0.2.9]; from=<s@remote.test> to=<u@example.test>"
HEAD = b"From: s@remote.test\nSubject: b\nMessage-ID: <b@remote.test>\n\n"
BC = "body_checks = regexp:@T@/bc\n"
BODY_TABLE = """\
/^BODY-REJECT/\t\tREJECT body rejected
/^BODY-DEFER/\t\tREJECT 4.7.1 body says later
/^BODY-DISCARD/\t\tDISCARD body discard
/^BODY-HOLD/\t\tHOLD body hold
/^BODY-WARN/\t\tWARN body warning
/^BODY-INFO/\t\tINFO body info
/^BODY-REPLACE (.*)/\tREPLACE replaced body line: $1
/^BODY-PREPEND/\t\tPREPEND inserted before this line
/^BODY-IGNORE/\t\tIGNORE
/^BODY-STRIP/\t\tSTRIP body strip
/^BODY-FILTER/\t\tFILTER smtp:[127.0.0.1]:10026
/^BODY-REDIRECT/\tREDIRECT r@example.test
/^BODY-BCC/\t\tBCC archive@example.test
/^BODY-PASS/\t\tPASS body pass
/^TVqQAAMAAAAEAAAA/\tREJECT Windows executable inside base64
"""


class Result:
    def __init__(self, c, out, logs):
        self.c, self.out, self.logs = c, out, logs

    @property
    def error(self):
        return None if self.c.error is None else str(self.c.error)

    def lines(self) -> list[str]:
        res = []
        for _, text in self.logs:
            if text.startswith("QID: "):
                text = text[5:]
            res.append(text.replace(TAIL, " F").replace(MIME_TAIL, " M"))
        return res

    @property
    def body(self) -> bytes:
        return self.out.split(b"\n\n", 1)[1] if b"\n\n" in self.out else b""


@pytest.fixture
def run(tmp_path, monkeypatch):
    captured: list[tuple[str, str]] = []
    def emit(sev: str, text: str, service: str | None = None) -> None:
        # a message's lines are cleanup(8)'s (pflogsumm counts header/body
        # check rejects by that tag); a table's own warnings are the maps'
        assert service == "cleanup" or not text.startswith("QID: "), text
        captured.append((sev, text))

    monkeypatch.setattr(log.LOG, "emit", emit)

    def go(conf: str, tables: dict[str, str], message: bytes, *, chunk: int = 0) -> Result:
        for name, text in tables.items():
            (tmp_path / name).write_text(text)
        clear_cache()
        del captured[:]
        s = CleanupSettings.from_config(Config.from_text(BASE + conf.replace("@T@", str(tmp_path))))
        c = Cleanup(s, queue_id="QID", sender="s@remote.test",
                    recipients=[Rcpt("u@example.test", "", "rfc822;u@example.test")],
                    client_addr="192.0.2.9", real_addr="192.0.2.9", arrival=1_800_000_000.0,
                    log_origin="c.test[192.0.2.9]", proto="ESMTP", helo="c.test")
        out = c.received(RECEIVED)
        step = chunk or len(message) or 1
        for i in range(0, len(message), step):
            out += c.feed(message[i:i + step])
        out += c.finish()
        if out.startswith(RECEIVED):
            out = out[len(RECEIVED):]
        return Result(c, out, list(captured))

    yield go
    clear_cache()


def body(r) -> bytes:
    return r.body


# ---------------------------------------------------------------- actions on body lines

def test_body_reject(run):
    r = run(BC, {"bc": BODY_TABLE}, HEAD + b"line 1\nBODY-REJECT me\n")
    assert r.error == "550 5.7.1 body rejected"
    assert r.lines() == ["message-id=<b@remote.test>",
                         "reject: body BODY-REJECT me F: 5.7.1 body rejected"]


def test_body_defer(run):
    r = run(BC, {"bc": BODY_TABLE}, HEAD + b"BODY-DEFER\n")
    assert r.error == "451 4.7.1 body says later"


@pytest.mark.parametrize("line,stored,logged", [
    (b"BODY-WARN x", b"a\nBODY-WARN x\nb\n", "warning: body BODY-WARN x F: body warning"),
    (b"BODY-INFO x", b"a\nBODY-INFO x\nb\n", "info: body BODY-INFO x F: body info"),
    (b"BODY-REPLACE old text", b"a\nreplaced body line: old text\nb\n",
     "replace: body BODY-REPLACE old text F: replaced body line: old text"),
    (b"BODY-PREPEND", b"a\ninserted before this line\nBODY-PREPEND\nb\n",
     "prepend: body BODY-PREPEND F: inserted before this line"),
    (b"BODY-IGNORE", b"a\nb\n", None),
    (b"BODY-STRIP", b"a\nb\n", "strip: body BODY-STRIP F: body strip"),
])
def test_body_edits(run, line, stored, logged):
    r = run(BC, {"bc": BODY_TABLE}, HEAD + b"a\n" + line + b"\nb\n")
    assert r.error is None
    assert r.body == stored
    assert r.lines()[1:] == ([logged] if logged else [])


def test_body_prepend_may_be_any_text(run):
    # in a body, PREPEND and REPLACE need no header label
    r = run(BC, {"bc": "/^x/ PREPEND not a header\n"}, HEAD + b"x\n")
    assert r.body == b"not a header\nx\n"


def test_body_verdicts(run):
    tables = {"bc": BODY_TABLE}
    r = run(BC, tables, HEAD + b"BODY-DISCARD\nBODY-REJECT\n")
    assert r.c.discard and r.error is None
    r = run(BC, tables, HEAD + b"BODY-HOLD\n")
    assert r.c.hold_reason == "body hold" and r.body == b"BODY-HOLD\n"
    r = run(BC, tables, HEAD + b"BODY-FILTER\n")
    assert r.c.content_filter == "smtp:[127.0.0.1]:10026"
    r = run(BC, tables, HEAD + b"BODY-REDIRECT\nBODY-REJECT\n")
    assert r.c.redirect == "r@example.test" and r.error is None
    r = run(BC, tables, HEAD + b"BODY-BCC\n")
    assert [x.address for x in r.c.recipients] == ["u@example.test", "archive@example.test"]
    r = run(BC, tables, HEAD + b"BODY-PASS\nBODY-REJECT\n")
    assert r.error is None and r.lines()[-1] == "pass: body BODY-PASS F: body pass"


def test_empty_lines_never_match(run):
    r = run(BC, {"bc": "/^$/ REJECT empty\n/^.*$/ WARN any\n"}, HEAD + b"\n\nx\n\n")
    assert r.error is None
    assert r.lines()[1:] == ["warning: body x F: any"]


def test_dot_stuffed_lines_arrive_unstuffed(run):
    # smtpd removes the dot stuffing before cleanup sees the lines
    r = run(BC, {"bc": "/^\\.leading/ WARN dot\n"}, HEAD + b".leading dot\n")
    assert r.lines()[1:] == ["warning: body .leading dot F: dot"]


def test_base64_is_checked_as_is(run):
    message = (b"From: s@remote.test\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
               b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
               b"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAA\n--b--\n")
    r = run(BC, {"bc": BODY_TABLE}, message)
    assert r.error == "550 5.7.1 Windows executable inside base64"


def test_part_headers_and_boundaries(run):
    message = (b"From: s@remote.test\nContent-Type: multipart/mixed; boundary=b\n\n"
               b"--b\nX-Head: 1\n\nX-Head: 2\n--b--\n")
    r = run(BC, {"bc": "/^X-Head/ WARN h\n/^--b/ WARN boundary\n"}, message)
    assert r.lines()[1:] == ["warning: body --b F: boundary", "warning: body X-Head: 2 F: h",
                             "warning: body --b-- F: boundary"]


# ---------------------------------------------------------------- limits

def test_body_checks_size_limit_counts_per_part(run):
    # recorded: hit 1, 2, 4, 5 and 7 are checked with a 20-byte limit
    message = (b"From: a@remote.test\nSubject: x\nContent-Type: multipart/mixed; boundary=BB\n\n"
               b"hit 1\nhit 2 1234567890\nhit 3\n--BB\n\nhit 4\nhit 5\n12345678901234567890\n"
               b"hit 6\n--BB--\nhit 7\n")
    for chunk in (0, 1, 5, 64):
        r = run(BC + "body_checks_size_limit = 20\n", {"bc": "/^hit/ WARN hit\n"}, message,
                chunk=chunk)
        assert [x.split(" F")[0] for x in r.lines()[1:]] == [
            "warning: body hit 1", "warning: body hit 2 1234567890", "warning: body hit 4",
            "warning: body hit 5", "warning: body hit 7"], chunk


def test_body_checks_size_limit_zero_means_everything(run):
    big = b"".join(b"filler line %d\n" % i for i in range(20000)) + b"BODY-REJECT late\n"
    r = run(BC + "body_checks_size_limit = 0\n", {"bc": BODY_TABLE}, HEAD + big, chunk=65536)
    assert r.error == "550 5.7.1 body rejected"


def test_huge_body_only_the_first_bytes_are_checked(run):
    filler = b"".join(b"filler line %d with some text\n" % i for i in range(200000))   # ~6 MB
    r = run(BC, {"bc": BODY_TABLE}, HEAD + filler + b"BODY-REJECT too late\n", chunk=65536)
    assert r.error is None
    assert r.body == filler + b"BODY-REJECT too late\n"
    r = run(BC, {"bc": BODY_TABLE}, HEAD + b"BODY-WARN early\n" + filler, chunk=65536)
    assert r.lines()[1:] == ["warning: body BODY-WARN early F: body warning"]


def test_long_lines_are_checked_in_pieces(run):
    # recorded with line_length_limit = 512: pieces of 512, 512 and 36 bytes
    line = b"x" * 1030 + b"y" * 30
    r = run(BC + "line_length_limit = 512\n", {"bc": "/^.{0,5}x/ WARN hitx\n/^y/ WARN hity\n"},
            HEAD + line + b"\n")
    assert [x.split(" F: ")[1] for x in r.lines()[1:]] == ["hitx", "hitx", "hitx"]
    assert r.lines()[3].startswith("warning: body xxxxxxyyy")
    assert r.body == line + b"\n"


def test_replace_of_a_piece_keeps_the_line_together(run):
    line = b"a" * 512 + b"MARK" + b"b" * 10
    r = run(BC + "line_length_limit = 512\n", {"bc": "/^MARK/ REPLACE mark\n/^a+$/ IGNORE\n"},
            HEAD + line + b"\n")
    assert r.body == b"mark\n"


# ---------------------------------------------------------------- MIME errors

def nest(n: int) -> bytes:
    s = b"From: a@remote.test\nSubject: nest\nContent-Type: multipart/mixed; boundary=b0\n\n"
    for i in range(1, n + 1):
        s += b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i - 1, i)
    return s + b"--b%d\n\ntext\n" % n


def test_nesting_limit(run):
    conf = "mime_nesting_limit = 3\nheader_checks = static:dunno\n"
    assert run(conf, {}, nest(4)).error is None
    r = run(conf, {}, nest(5))
    assert r.error == "550 5.6.0 MIME nesting exceeds safety limit"
    assert ("reject: mime-error MIME nesting exceeds safety limit: Content-Type: multipart/mixed;"
            " boundary=b5 M") in r.lines()


def test_nesting_is_only_reported_with_checks_or_strict_options(run):
    assert run("mime_nesting_limit = 3\nbody_checks = static:dunno\n", {}, nest(5)).error is None


@pytest.mark.parametrize("conf,message,error,logged", [
    ("strict_8bitmime_body = yes\n", HEAD + b"body caf\xc3\xa9\n",
     "improper use of 8-bit data in message body", "body caf??"),
    ("strict_8bitmime = yes\n", b"From: a@remote.test\nSubject: caf\xc3\xa9\n\nbody\n",
     "improper use of 8-bit data in message header", "Subject: caf??"),
    ("strict_7bit_headers = yes\n", b"From: a@remote.test\nSubject: caf\xc3\xa9\n\nbody\n",
     "improper use of 8-bit data in message header", "Subject: caf??"),
    ("strict_mime_encoding_domain = yes\n",
     b"From: a@remote.test\nContent-Type: multipart/mixed; boundary=zz\n"
     b"Content-Transfer-Encoding: base64\n\n--zz\n\nx\n--zz--\n",
     "invalid message/* or multipart/* encoding domain", "base64"),
    ("strict_mime_encoding_domain = yes\n",
     b"From: a@remote.test\nContent-Type: message/partial; id=1\n"
     b"Content-Transfer-Encoding: 8bit\n\nx\n", "invalid message/* or multipart/* encoding domain",
     "8bit"),
])
def test_strict_options(run, conf, message, error, logged):
    r = run(conf, {}, message)
    assert r.error == f"550 5.6.0 {error}"
    assert f"reject: mime-error {error}: {logged} M" in r.lines()


@pytest.mark.parametrize("conf,message", [
    ("strict_8bitmime_body = yes\n",
     b"From: a@remote.test\nContent-Transfer-Encoding: 8bit\n\nbody caf\xc3\xa9\n"),
    ("strict_8bitmime_body = yes\n", b"From: a@remote.test\nSubject: caf\xc3\xa9\n\nbody\n"),
    ("strict_7bit_headers = yes\n", HEAD + b"body caf\xc3\xa9\n"),
    ("strict_mime_encoding_domain = yes\n",
     b"From: a@remote.test\nContent-Type: multipart/mixed; boundary=zz\n"
     b"Content-Transfer-Encoding: 7bit\n\n--zz\n\nx\n--zz--\n"),
])
def test_strict_options_accept_what_is_allowed(run, conf, message):
    assert run(conf, {}, message).error is None


def test_mime_error_does_not_stop_the_checks(run):
    # the 8-bit error is decided at the end; a later REJECT's reply wins
    r = run(BC + "strict_8bitmime_body = yes\n", {"bc": BODY_TABLE},
            HEAD + b"caf\xc3\xa9\nBODY-REJECT\n")
    assert r.error == "550 5.7.1 body rejected"


@pytest.mark.parametrize("message", [
    # multipart without a boundary parameter
    b"From: a\nContent-Type: multipart/mixed\n\n--b\nContent-Type: text/plain\n\nx\n",
    # boundary never closed, message ends inside part headers
    b"From: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nX-Cut",
    # truncated base64 and a stray closing boundary
    b"From: a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\n"
    b"\nTVqQAAMAAAAEAAA\n--c--\n--b--\n--b--\n",
    # empty boundary, comment-only content type, unbalanced quotes and comments
    b'From: a\nContent-Type: multipart/mixed; boundary=""\n\n----\n--x\n',
    b"From: a\nContent-Type: (only a comment)\n\nx\n",
    b'From: a\nContent-Type: multipart/mixed; boundary="unterminated\n\n--unterminated\n\nx\n',
    b"From: a\nContent-Type: multipart/(mixed; boundary=b\n\n--b\n\nx\n",
    b"From: a\nContent-Type: message/rfc822\n\nnot a header\n\x00\xff\n",
    b"From: a\nContent-Type: message/rfc822\n\n",
    b"From: a\nContent-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: digest\n\nb\n--d--",
])
def test_malformed_mime_is_taken_as_it_comes(run, message):
    conf = BC + "header_checks = static:dunno\nstrict_mime_encoding_domain = yes\n"
    for chunk in (0, 1, 3):
        r = run(conf, {"bc": BODY_TABLE}, message, chunk=chunk)
        assert r.error is None
        stored = r.out
        # only the added headers differ from the input
        assert stored.endswith(message.split(b"\n\n", 1)[1] + (b"" if message.endswith(b"\n") else b"\n")) \
            or b"\n\n" not in message


# ---------------------------------------------------------------- fast path = line by line

VOCAB = [b"", b"plain text", b"BODY-WARN w", b"BODY-INFO i", b"BODY-PREPEND", b"BODY-IGNORE",
         b"BODY-STRIP", b"BODY-REPLACE r", b"--b1", b"--b2", b"--b1--", b"--b2--", b"-- ",
         b"Content-Type: multipart/alternative; boundary=b2", b"Content-Type: text/plain",
         b"Content-Type: message/rfc822", b"X-Header: v", b" folded", b"caf\xc3\xa9 8bit",
         b"x" * 3000, b"long " + b"y" * 2100 + b" BODY-WARN", b"TVqQAAMAAAAEAAAA base64",
         b"Subject: inner", b"ends with x"]


def random_message(rng: random.Random) -> bytes:
    lines = [b"From: a@remote.test", b"Content-Type: multipart/mixed; boundary=b1", b""]
    lines += [rng.choice(VOCAB) for _ in range(rng.randint(0, 120))]
    return b"\n".join(lines) + rng.choice([b"\n", b""])


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_equals_line_by_line(run, monkeypatch, seed):
    rng = random.Random(seed)
    conf = (BC + "body_checks_size_limit = 3000\nmime_header_checks = regexp:@T@/mh\n"
            "strict_8bitmime_body = yes\n")
    tables = {"bc": BODY_TABLE + "/x$/ WARN ends\n/^(--|caf)/ INFO dash\n",
              "mh": "/^X-Header:/ PREPEND X-Added: 1\n"}
    for _ in range(15):
        message = random_message(rng)
        results = []
        for chunk in (0, 1, 977):
            results.append(run(conf, tables, message, chunk=chunk))
        with monkeypatch.context() as m:
            m.setattr(checks_mod.CheckMaps, "scanner", property(lambda self: None))
            results.append(run(conf, tables, message))
        first = results[0]
        for other in results[1:]:
            assert (other.lines(), other.error) == (first.lines(), first.error)
            if first.error is None:     # what is stored after a rejection does not matter
                assert other.out == first.out


def test_line_scanner_finds_every_matching_line():
    rng = random.Random(1)
    atoms = [b"a", b"b", b"x", b"BODY", b"-", b" ", b"<", b">"]
    posix = [rb"^BODY-REJECT", rb"<iframe[^>]+src=", rb"x$", rb"^a", rb"b$", rb"^.*x a",
             rb"\<ab", rb"ab\>", rb"^(a|b)+$", rb"a.b", rb"[^a]$", rb"^[ab]*x", rb"BODY.*-$"]
    pcre = [rb"^\s*BODY", rb"\bab\b", rb"x$", rb"(?<=a)b", rb"a\z", rb"\Ab", rb"x\Z", rb"(?i)body-"]
    misses = 0
    for _ in range(150):
        pats = [P.posix_pattern(s) for s in rng.sample(posix, rng.randint(1, 5))] + \
               [P.pcre_pattern(s) for s in rng.sample(pcre, rng.randint(0, 3))]
        sc = P.LineScanner(pats)
        assert sc.usable
        for _ in range(4):
            lines = [b"".join(rng.choice(atoms) for _ in range(rng.randint(0, 6)))
                     for _ in range(rng.randint(1, 40))]
            data = b"".join(x + b"\n" for x in lines)
            cands = set(sc.candidate_lines(data, 0, len(data)))
            pos = 0
            for x in lines:
                if x and any(p.search(x) for p in pats) and (pos, pos + len(x)) not in cands:
                    misses += 1
                pos += len(x) + 1
    assert misses == 0


def test_line_scanner_declines_what_it_cannot_express():
    raw = P.pcre_pattern(rb"(?m)^a(?-m)$")          # raw PCRE text: not rewritten
    assert P.span_expr(raw) is None or P.LineScanner([raw]).usable
    assert P.span_expr(P.posix_pattern(rb"^a[$^]b$")) == rb"\n[Aa][\x24\x5e][Bb]\n" \
        or b"[" in P.span_expr(P.posix_pattern(rb"^a[$^]b$"))


def test_negated_rules_are_looked_up_line_by_line(run):
    r = run(BC, {"bc": "!/^keep/ WARN not keep\n"}, HEAD + b"keep this\ndrop that\n")
    assert r.lines()[1:] == ["warning: body drop that F: not keep"]
