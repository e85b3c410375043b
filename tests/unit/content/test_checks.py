"""header_checks / mime_header_checks / nested_header_checks / body_checks
through the cleanup stage, action by action.

Expected replies, log lines and stored content were taken from a private
Postfix 3.7.11 instance (tools/postfix_instance.py) fed the same tables and
messages; the log lines are compared without the leading queue ID and with
the client part abbreviated as Postfix wrote it here
(`from c.test[192.0.2.9]; from=<s@remote.test> to=<u@example.test>
proto=ESMTP helo=<c.test>`).
"""

from __future__ import annotations

import pytest

from postier import log
from postier.cleanup import Cleanup, CleanupSettings, Rcpt
from postier.config import Config
from postier.maps import clear_cache

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
HDRS = b"From: s@remote.test\nTo: u@example.test\n"


class Run:
    """One message through cleanup with the given main.cf lines and tables."""

    def __init__(self, c: Cleanup, out: bytes, logs: list[tuple[str, str]]):
        self.c = c
        self.out = out
        self.logs = logs

    @property
    def error(self):
        return None if self.c.error is None else str(self.c.error)

    def lines(self, severity: str | None = None) -> list[str]:
        """Log texts, the queue ID prefix and the client tail shortened."""
        res = []
        for sev, text in self.logs:
            if severity is not None and sev != severity:
                continue
            if text.startswith("QID: "):
                text = text[5:]
            res.append(text.replace(TAIL, " F"))
        return res

    @property
    def body(self) -> bytes:
        """The stored content after the primary header block."""
        return self.out.split(b"\n\n", 1)[1] if b"\n\n" in self.out else b""


@pytest.fixture
def run(tmp_path, monkeypatch):
    clear_cache()
    captured: list[tuple[str, str]] = []
    def emit(sev: str, text: str, service: str | None = None) -> None:
        # a message's lines are cleanup(8)'s (pflogsumm counts header/body
        # check rejects by that tag); a table's own warnings are the maps'
        assert service == "cleanup" or not text.startswith("QID: "), text
        captured.append((sev, text))

    monkeypatch.setattr(log.LOG, "emit", emit)

    def go(conf: str, tables: dict[str, str], message: bytes, *, chunk: int = 0,
           rcpts=("u@example.test",)) -> Run:
        for name, text in tables.items():
            (tmp_path / name).write_text(text)
        conf = conf.replace("@T@", str(tmp_path))
        clear_cache()
        del captured[:]
        s = CleanupSettings.from_config(Config.from_text(BASE + conf))
        c = Cleanup(s, queue_id="QID", sender="s@remote.test",
                    recipients=[Rcpt(r, "", f"rfc822;{r}") for r in rcpts],
                    client_addr="192.0.2.9", real_addr="192.0.2.9", arrival=1_800_000_000.0,
                    log_origin="c.test[192.0.2.9]", proto="ESMTP", helo="c.test")
        out = c.received(RECEIVED)
        if chunk:
            for i in range(0, len(message), chunk):
                out += c.feed(message[i:i + chunk])
        else:
            out += c.feed(message)
        out += c.finish()
        if out.startswith(RECEIVED):
            out = out[len(RECEIVED):]
        return Run(c, out, list(captured))

    yield go
    clear_cache()


HC = "header_checks = regexp:@T@/hc\n"


def msg(subject: str, extra: bytes = b"", body: bytes = b"body\n") -> bytes:
    """From, To, Subject, `extra` headers, Message-ID, then the body."""
    return (HDRS + b"Subject: " + subject.encode("utf-8", "surrogateescape") + b"\n" + extra
            + b"Message-ID: <m@remote.test>\n\n" + body)


# ---------------------------------------------------------------- header actions

def test_no_checks_no_hooks():
    s = CleanupSettings.from_config(Config.from_text(BASE))
    assert s.hooks is None


def test_reject_with_text(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT go away\n"}, msg("bad one"))
    assert r.error == "550 5.7.1 go away"
    assert r.lines() == [f"reject: header Subject: bad one{' F'}: 5.7.1 go away"]


def test_reject_without_text(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT\n"}, msg("bad"))
    assert r.error == "550 5.7.1 message content rejected"
    assert r.lines() == ["reject: header Subject: bad F: 5.7.1 message content rejected"]


def test_reject_with_4xx_status_defers(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT 4.7.1 try again later\n"}, msg("bad"))
    assert r.error == "451 4.7.1 try again later"


def test_reject_keeps_a_custom_5xx_status(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT 5.7.9 custom\n"}, msg("bad"))
    assert r.error == "550 5.7.9 custom"


def test_reject_with_an_invalid_status_gets_the_default_in_front(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT 3.1.1 bad dsn\n"}, msg("bad"))
    assert r.error == "550 5.7.1 3.1.1 bad dsn"


def test_reject_with_a_2xx_status_becomes_a_deferral(run):
    r = run(HC, {"hc": "/^Subject: bad/ REJECT 2.0.0 weird\n"}, msg("bad"))
    assert r.error == "451 4.0.0 weird"
    assert r.lines("warning") == ["bad DSN action in 2.0.0 weird -- need 4.x.x or 5.x.x"]


def test_reject_stops_reading(run):
    # Postfix logs nothing about the headers after the rejected one
    r = run(HC, {"hc": "/^Subject: bad/ REJECT no\n/^X-After:/ WARN later\n"},
            msg("bad", b"X-After: 1\nMessage-ID: <x@y>\n"))
    assert r.lines() == ["reject: header Subject: bad F: 5.7.1 no"]


@pytest.mark.parametrize("action,word", [("WARN", "warning"), ("INFO", "info")])
def test_warn_and_info_log_and_keep(run, action, word):
    r = run(HC, {"hc": f"/^Subject: x/ {action} look at this\n"}, msg("x"))
    assert r.error is None
    assert f"{word}: header Subject: x F: look at this" in r.lines()
    assert b"Subject: x\n" in r.out


def test_warn_without_text_has_no_colon_part(run):
    r = run(HC, {"hc": "/^Subject: x/ WARN\n"}, msg("x"))
    assert "warning: header Subject: x F" in r.lines()


def test_discard(run):
    r = run(HC, {"hc": "/^Subject: x/ DISCARD gone\n/^X-Later:/ REJECT never\n"},
            msg("x", b"X-Later: 1\n"))
    assert r.error is None and r.c.discard
    assert r.lines() == ["discard: header Subject: x F: gone"]


def test_hold_is_logged_once(run):
    r = run(HC, {"hc": "/^Subject: x/ HOLD held\n/^X-Two:/ HOLD again\n"},
            msg("x", b"X-Two: 1\n"))
    assert r.c.hold_reason == "held"
    assert [x for x in r.lines() if x.startswith("hold")] == ["hold: header Subject: x F: held"]


def test_filter(run):
    r = run(HC, {"hc": "/^Subject: x/ FILTER smtp:[127.0.0.1]:10026\n"}, msg("x"))
    assert r.c.content_filter == "smtp:[127.0.0.1]:10026"
    assert "filter: header Subject: x F: smtp:[127.0.0.1]:10026" in r.lines()


@pytest.mark.parametrize("value,warning", [
    ("FILTER", "missing FILTER command argument in header_checks map"),
    ("FILTER nocolon", "bad FILTER command nocolon in header_checks -- need transport:destination"),
    ("REDIRECT noat", 'bad REDIRECT target "noat" in header_checks map -- need user@domain'),
    ("BCC noat", 'bad BCC address "noat" in header_checks map -- need user@domain'),
    ("PREPEND", "PREPEND action without text in header_checks map"),
    ("PREPEND not a header", 'bad PREPEND header text "not a header" in header_checks map -- '
                             'need "headername: headervalue"'),
    ("REPLACE", "REPLACE action without text in header_checks map"),
    ("REPLACE not a header", 'bad REPLACE header text "not a header" in header_checks map -- '
                             'need "headername: headervalue"'),
    ("FROBNICATE something", "unknown command in header_checks map: FROBNICATE something"),
    # Postfix 3.7 has no DEFER and no numeric replies in header_checks
    ("DEFER later", "unknown command in header_checks map: DEFER later"),
    ("550 numeric", "unknown command in header_checks map: 550 numeric"),
])
def test_bad_action_arguments_warn_and_change_nothing(run, value, warning):
    r = run(HC, {"hc": f"/^Subject: x/ {value}\n"}, msg("x"))
    assert r.lines("warning") == [warning]
    assert r.error is None
    assert r.c.content_filter == "" and r.c.redirect == "" and r.c.hold_reason is None
    assert b"Subject: x\n" in r.out
    assert [x.address for x in r.c.recipients] == ["u@example.test"]


def test_prepend_goes_before_the_header(run):
    r = run(HC, {"hc": "/^X-Trigger:/ PREPEND X-Added: yes\n"}, msg("x", b"X-Trigger: 1\n"))
    assert b"X-Added: yes\nX-Trigger: 1\n" in r.out
    assert "prepend: header X-Trigger: 1 F: X-Added: yes" in r.lines()


def test_replace_with_captures(run):
    r = run(HC, {"hc": "/^Subject:(.*)\\[TAG\\](.*)/ REPLACE Subject:${1}[done]${2}\n"},
            msg("a [TAG] b"))
    assert b"Subject: a [done] b\n" in r.out
    assert "replace: header Subject: a [TAG] b F: Subject: a [done] b" in r.lines()


def test_replace_into_message_id_counts_as_that_header(run):
    r = run(HC, {"hc": "/^Subject: mk/ REPLACE Message-ID: <made@x>\n"},
            b"From: s@remote.test\nSubject: mk\n\nb\n")
    assert "message-id=<made@x>" in r.lines()
    assert r.out.count(b"Message-I") == 1


def test_redirect_stops_further_checks(run):
    r = run(HC + "body_checks = regexp:@T@/bc\n",
            {"hc": "/^Subject: x/ REDIRECT r@example.test\n", "bc": "/^body/ REJECT no\n"},
            msg("x"))
    assert r.error is None and r.c.redirect == "r@example.test"


def test_filter_then_redirect_keeps_both(run):
    r = run(HC, {"hc": "/^Subject: x/ FILTER smtp:x:1\n/^X-R:/ REDIRECT r@example.test\n"
                       "/^X-F:/ FILTER smtp:y:2\n"}, msg("x", b"X-R: 1\nX-F: 1\n"))
    assert (r.c.content_filter, r.c.redirect) == ("smtp:x:1", "r@example.test")


def test_bcc_adds_a_recipient_after_the_content(run):
    r = run(HC, {"hc": "/^Subject: x/ BCC archive@example.test\n/^X-Again:/ BCC archive@example.test\n"},
            msg("x", b"X-Again: 1\n"))
    bcc = [x for x in r.c.recipients if x.address == "archive@example.test"]
    assert len(bcc) == 1
    assert (bcc[0].dsn_notify, bcc[0].segment, bcc[0].orig) == ("NEVER", "extracted",
                                                                "archive@example.test")


def test_bcc_to_an_envelope_recipient_is_kept(run):
    # different NOTIFY: not a duplicate (Postfix 3.7 keeps both)
    r = run(HC, {"hc": "/^Subject: x/ BCC u@example.test\n"}, msg("x"))
    assert [x.address for x in r.c.recipients] == ["u@example.test", "u@example.test"]


@pytest.mark.parametrize("action,logged", [("IGNORE", []), ("STRIP gone", ["strip: header X-Drop: 1 F: gone"])])
def test_ignore_and_strip_delete_the_header(run, action, logged):
    r = run(HC, {"hc": f"/^X-Drop:/ {action}\n"}, msg("x", b"X-Drop: 1\nX-Keep: 2\n"))
    assert b"X-Drop" not in r.out and b"X-Keep: 2\n" in r.out
    assert [x for x in r.lines() if "X-Drop" in x] == logged


@pytest.mark.parametrize("action", ["DUNNO", "OK", "dunno with text"])
def test_dunno_and_ok_do_nothing(run, action):
    r = run(HC, {"hc": f"/^Subject: x/ {action}\n/^Subject:/ REJECT second rule\n"}, msg("x"))
    assert r.error is None
    assert r.lines("warning") == []


def test_pass_ends_all_inspection(run):
    r = run(HC + "body_checks = regexp:@T@/bc\n",
            {"hc": "/^Subject: x/ PASS trusted\n/^X-Later:/ REJECT no\n", "bc": "/^body/ REJECT no\n"},
            msg("x", b"X-Later: 1\n"))
    assert r.error is None
    assert "pass: header Subject: x F: trusted" in r.lines()


def test_action_names_are_case_insensitive(run):
    r = run(HC, {"hc": "/^Subject: x/ reject lower case\n"}, msg("x"))
    assert r.error == "550 5.7.1 lower case"


def test_smtpd_received_header_is_checked(run):
    r = run(HC, {"hc": "/^Received: from c\\.test .*192\\.0\\.2\\.9/ REJECT bad relay\n"}, msg("x"))
    assert r.error == "550 5.7.1 bad relay"
    # folded lines reach the table with their newlines; the log shows them as ??
    assert r.lines()[0].startswith("reject: header Received: from c.test (c.test [192.0.2.9])??by")


def test_folded_header_keeps_its_newlines_for_pcre(run):
    r = run("header_checks = pcre:@T@/hc\n", {"hc": "/^Subject:.*folded\\n\\s+cont/ REJECT fold\n"},
            HDRS + b"Subject: this is folded\n continuation\n\nb\n")
    assert r.error == "550 5.7.1 fold"
    assert r.lines() == ["reject: header Subject: this is folded? continuation F: 5.7.1 fold"]


def test_log_shows_200_bytes_and_question_marks(run):
    r = run(HC, {"hc": "/^Subject:/ WARN w\n"}, msg("caf\u00e9 \x01" + "x" * 300))
    line = r.lines()[0]
    assert line.startswith("warning: header Subject: caf?? ?xxx")
    assert line.endswith(" F: w")
    assert len(line.split(" F: ")[0]) == len("warning: header ") + 200


def test_log_keeps_utf8_with_smtputf8(run):
    r = run(HC + "smtputf8_enable = yes\n", {"hc": "/^Subject:/ WARN w\n"},
            msg("\u00e9t\u00e9 \x01 \udcff"))
    assert r.lines()[0].startswith("warning: header Subject: \u00e9t\u00e9 ? ?")


def test_mime_headers_of_the_primary_header_use_mime_header_checks(run):
    r = run(HC + "mime_header_checks = regexp:@T@/mh\n",
            {"hc": "/^Content-Type:/ REJECT wrong table\n", "mh": "/^Content-Type:/ WARN mime\n"},
            msg("x", b"MIME-Version: 1.0\nContent-Type: text/plain\n"))
    assert r.error is None
    assert "warning: header Content-Type: text/plain F: mime" in r.lines()


def test_mime_and_nested_checks_default_to_header_checks(run):
    r = run(HC, {"hc": "/^Content-Type: text\\/html/ WARN html\n/^Subject: inner/ WARN nested\n"},
            MP_NESTED)
    assert "warning: header Content-Type: text/html F: html" in r.lines()
    assert "warning: header Subject: inner F: nested" in r.lines()


def test_receive_override_no_header_body_checks(run):
    r = run(HC + "receive_override_options = no_header_body_checks\n",
            {"hc": "/^Subject: x/ REJECT no\n"}, msg("x"))
    assert r.error is None and r.lines() == ["message-id=<m@remote.test>"]


# ---------------------------------------------------------------- MIME parts

MP_NESTED = b"""From: s@remote.test
Subject: outer
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BB"

preamble
--BB
Content-Type: text/html
X-Part: 1

<p>part</p>
--BB
Content-Type: message/rfc822

From: inner@x
Subject: inner
X-Nest: 1

inner body
--BB--
epilogue
"""


def mp(table_param: str, rule: str, run):
    return run(f"{table_param} = regexp:@T@/t\n", {"t": rule}, MP_NESTED)


@pytest.mark.parametrize("param,header", [
    ("mime_header_checks", "X-Part: 1"), ("mime_header_checks", "Content-Type: text/html"),
    ("nested_header_checks", "X-Nest: 1"), ("mime_header_checks", "Content-Type: message/rfc822"),
])
def test_where_each_header_goes(run, param, header):
    name = header.split(":")[0]
    r = mp(param, f"/^{name}: / WARN seen\n", run)
    assert f"warning: header {header} F: seen" in r.lines()


def test_part_headers_are_not_header_checks_or_body_checks(run):
    r = run(HC + "body_checks = regexp:@T@/bc\n",
            {"hc": "/^X-Part:/ REJECT hc\n/^X-Nest:/ REJECT hc\n", "bc": "/^X-Part:/ REJECT bc\n"},
            MP_NESTED.replace(b"Content-Type: text/html\n", b""))
    # without mime/nested tables of their own these default to header_checks
    assert r.error == "550 5.7.1 hc"
    r = run(HC + "mime_header_checks =\nnested_header_checks =\nbody_checks = regexp:@T@/bc\n",
            {"hc": "/^X-Part:/ REJECT hc\n", "bc": "/^X-Part:/ REJECT bc\n/^From: inner/ WARN b\n"},
            MP_NESTED)
    assert r.error is None
    assert not any("From: inner" in x for x in r.lines())


@pytest.mark.parametrize("param", ["mime_header_checks", "nested_header_checks"])
def test_reject_in_part_headers(run, param):
    hdr = "X-Part" if param == "mime_header_checks" else "X-Nest"
    r = mp(param, f"/^{hdr}:/ REJECT part header\n", run)
    assert r.error == "550 5.7.1 part header"
    assert r.lines()[-1] == f"reject: header {hdr}: 1 F: 5.7.1 part header"


@pytest.mark.parametrize("param,hdr", [("mime_header_checks", "X-Part"),
                                       ("nested_header_checks", "X-Nest")])
def test_edit_actions_in_part_headers(run, param, hdr):
    r = mp(param, f"/^{hdr}:/ PREPEND X-Before: yes\n", run)
    assert f"X-Before: yes\n{hdr}: 1\n".encode() in r.body
    r = mp(param, f"/^{hdr}: (.*)/ REPLACE X-New: was $1\n", run)
    assert b"X-New: was 1\n" in r.body and f"{hdr}:".encode() not in r.body
    r = mp(param, f"/^{hdr}:/ IGNORE\n", run)
    assert f"{hdr}:".encode() not in r.body
    # everything else is stored as it came
    assert r.body.replace(b"", b"") == MP_NESTED.split(b"\n\n", 1)[1].replace(f"{hdr}: 1\n".encode(), b"")


@pytest.mark.parametrize("param", ["mime_header_checks", "nested_header_checks"])
def test_other_actions_in_part_headers(run, param):
    hdr = "X-Part" if param == "mime_header_checks" else "X-Nest"
    for action, check in [("HOLD h", lambda r: r.c.hold_reason == "h"),
                          ("DISCARD d", lambda r: r.c.discard),
                          ("FILTER smtp:a:1", lambda r: r.c.content_filter == "smtp:a:1"),
                          ("REDIRECT x@example.test", lambda r: r.c.redirect == "x@example.test"),
                          ("BCC b@example.test", lambda r: r.c.recipients[-1].address == "b@example.test"),
                          ("INFO i", lambda r: f"info: header {hdr}: 1 F: i" in r.lines()),
                          ("STRIP s", lambda r: f"{hdr}:".encode() not in r.body)]:
        r = mp(param, f"/^{hdr}:/ {action}\n", run)
        assert check(r), action


def test_attachment_name_rule_of_the_manual(run):
    rule = ('/^\\s*Content-(Disposition|Type).*name\\s*=\\s*"?(.*(\\.|=2E)(\n'
            '   ade|adp|app|asp|bas|bat|chm|cmd|com|cpl|crt|dll|exe|\n'
            '   hlp|ht[at]|inf|ins|isp|jse?|lnk|md[betw]|ms[cipt]|\n'
            '   pcd|pif|reg|sc[frt]|sh[bs]|vb[esx]?|ws[cfh]\n'
            '   ))(\\?=)?"?\\s*(;|$)/x\n'
            '    REJECT Attachment name "$2" may not end with ".$4"\n')
    message = (b"From: s@remote.test\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
               b"Content-Disposition: attachment; filename=\"x.exe\"\n\nAA\n--b--\n")
    r = run("mime_header_checks = pcre:@T@/t\n", {"t": rule}, message)
    assert r.error == '550 5.7.1 Attachment name "x.exe" may not end with ".exe"'
    r = run("mime_header_checks = pcre:@T@/t\n", {"t": rule}, message.replace(b"x.exe", b"x.msix"))
    assert r.error is None


def test_content_transfer_encoding_8bit_in_a_part_is_recorded(run):
    r = run("body_checks = regexp:@T@/bc\n", {"bc": "/^zzz/ WARN z\n"},
            MP_NESTED.replace(b"X-Part: 1\n", b"Content-Transfer-Encoding: 8bit\n"))
    assert r.c.header_encoding == "8bit"


# ---------------------------------------------------------------- broken tables

def test_missing_table_defers_the_message(run, tmp_path):
    r = run("header_checks = regexp:@T@/missing\n", {}, msg("x"))
    assert r.error == "451 4.3.0 Error: queue file write error"
    path = f"{tmp_path}/missing"
    assert r.lines() == [
        f"open {path}: No such file or directory",
        f"regexp:{path} is unavailable. open {path}: No such file or directory",
        f'regexp:{path} lookup error for "Received: from c.test (c.test [192.0.2.9])??by '
        'mx.example.test (Postfix) with ESMTP id QID??for <u@example.test>; '
        'Sat, 28 Nov 2026 05:51:02 +0000 (UTC)"',
        "header_checks map lookup problem -- message not accepted, try again later"]


def test_missing_body_table_defers_at_the_first_body_line(run):
    r = run("body_checks = regexp:@T@/missing\n", {}, msg("x", body=b"\n\nfirst\nsecond\n"))
    assert r.error == "451 4.3.0 Error: queue file write error"
    assert r.lines()[-1] == "body_checks map lookup problem -- message not accepted, try again later"
    assert 'lookup error for "first"' in r.lines()[-2]


def test_empty_result_is_a_table_problem(run):
    r = run(HC, {"hc": "/^Subject: EMPTY/\n"}, msg("EMPTY"))
    assert r.error == "451 4.3.0 Error: queue file write error"
    assert r.lines("warning")[-3:] == [
        "header_checks lookup of Subject: EMPTY returns an empty string result",
        "header_checks should return NO RESULT in case of NOT FOUND",
        "header_checks map lookup problem -- message not accepted, try again later"]


def test_bad_rule_is_skipped_the_others_work(run, tmp_path):
    r = run(HC, {"hc": "/^Subject: (x/ REJECT\n/^Subject: y/ REJECT yy\n"}, msg("y"))
    assert r.error == "550 5.7.1 yy"
    assert r.lines("warning") == [f"regexp map {tmp_path}/hc, line 1: Unmatched ( or \\("]


def test_other_table_types_work(run):
    r = run("header_checks = texthash:@T@/th\n", {"th": "x-flag:on REJECT exact match\n"},
            msg("x", b"X-Flag:on\n"))
    assert r.error == "550 5.7.1 exact match"
    r = run("header_checks = static:warn\n", {}, msg("any"))
    assert "warning: header Subject: any F" in r.lines()


def test_tables_are_searched_in_order(run):
    r = run("header_checks = regexp:@T@/a, pcre:@T@/b\n",
            {"a": "/^Subject: one/ WARN from a\n", "b": "/^Subject:/ REJECT from b\n"}, msg("one"))
    assert r.error is None and "warning: header Subject: one F: from a" in r.lines()
    r = run("header_checks = regexp:@T@/a, pcre:@T@/b\n",
            {"a": "/^Subject: one/ WARN from a\n", "b": "/^Subject:/ REJECT from b\n"}, msg("two"))
    assert r.error == "550 5.7.1 from b"
