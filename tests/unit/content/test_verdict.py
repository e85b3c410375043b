"""postier.content.verdict: destinies, priorities, per-recipient maps,
amavisd's header formats and the quarantine file."""

from __future__ import annotations

import os
import stat

import pytest

from postier.config import Config
from postier.content.antivirus import BytesSource
from postier.content.banned import BannedHit
from postier.content.verdict import (
    ContentPolicy,
    Findings,
    SpamResult,
    decide,
    fold,
    number,
    quarantine,
    spam_headers,
)
from postier.errors import ConfigError

BASE = "mydomain = example.test\nrecipient_delimiter = +\n"


def policy(extra: str = "") -> ContentPolicy:
    return ContentPolicy.from_config(Config.from_text(BASE + extra))


VIRUS = Findings(av_status="infected", viruses=["Eicar-Signature"])
CLEAN = Findings(av_status="clean")
BANNED = Findings(av_status="clean", banned=[BannedHit("x.pdf.exe", "double extension .pdf.exe")])


def spam(score: float, **kw) -> Findings:
    return Findings(av_status="clean", spam=SpamResult(score, [("BAYES_99", 3.5),
                                                               ("URIBL_BLACK", 1.7)]), **kw)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("x,text", [(7.1, "7.1"), (2.0, "2"), (6.31, "6.31"), (-0.0001, "0"),
                                    (-1.9, "-1.9"), (0.1234, "0.123"), (1000.0, "1000")])
def test_number(x, text):
    assert number(x) == text


def test_spam_headers_amavisd_format():
    p = policy()
    h = spam_headers(SpamResult(7.1, [("URIBL_BLACK", 1.7), ("BAYES_99", 3.5)]), p, True)
    assert h == ["X-Spam-Flag: YES", "X-Spam-Score: 7.1", "X-Spam-Level: *******",
                 "X-Spam-Status: Yes, score=7.1 tagged_above=2 required=6.31\n"
                 "\ttests=[BAYES_99=3.5, URIBL_BLACK=1.7]"]
    h = spam_headers(SpamResult(0.5, []), p, False)
    assert h[:3] == ["X-Spam-Flag: NO", "X-Spam-Score: 0.5", "X-Spam-Level:"]
    assert h[3] == "X-Spam-Status: No, score=0.5 tagged_above=2 required=6.31 tests=[]"
    assert spam_headers(SpamResult(99.0, []), p, True)[2] == "X-Spam-Level: " + "*" * 64


def test_fold():
    line = "X-Spam-Status: Yes, " + ", ".join(f"RULE_NUMBER_{i}=1.0" for i in range(10))
    folded = fold(line)
    assert folded.replace("\n\t", " ") == line
    assert all(len(x) <= 78 for x in folded.split("\n"))


# ----------------------------------------------------------------------------- destinies


def test_virus_reject_and_discard():
    v = decide(VIRUS, "s@x.test", ["r@example.test"], policy(), "QID1")
    assert (v.action, v.category) == ("reject", "virus")
    assert v.reply.line() == "554 5.7.0 Reject, id=QID1 - VIRUS: Eicar-Signature"
    assert v.blocked == {"r@example.test": "virus"}
    v = decide(VIRUS, "s@x.test", ["r@example.test"], policy("final_virus_destiny = discard"),
               "QID1")
    assert v.action == "discard"
    assert v.reply.line() == "250 2.7.0 Ok, discarded, id=QID1 - VIRUS: Eicar-Signature"


def test_priority_virus_over_banned_over_spam():
    f = Findings(av_status="infected", viruses=["V"], banned=BANNED.banned,
                 spam=SpamResult(50.0), bad_header=["Duplicate header field: \"Subject\""])
    p = policy("final_spam_destiny = reject\nfinal_bad_header_destiny = reject")
    assert decide(f, "", ["r@example.test"], p, "Q").category == "virus"
    f.av_status, f.viruses = "clean", []
    v = decide(f, "", ["r@example.test"], p, "Q")
    assert v.category == "banned" and v.reply.text.endswith("BANNED: x.pdf.exe")
    f.banned = []
    v = decide(f, "", ["r@example.test"], p, "Q")
    assert v.category == "spam" and v.reply.text.endswith("SPAM, score=50")
    f.spam = None
    v = decide(f, "", ["r@example.test"], p, "Q")
    assert v.reply.text.endswith('BAD HEADER SECTION, Duplicate header field: "Subject"')


def test_pass_destiny_adds_alert_headers():
    p = policy("final_virus_destiny = pass\nfinal_banned_destiny = pass")
    v = decide(Findings(av_status="infected", viruses=["V1", "V2"], banned=BANNED.banned),
               "", ["r@example.test"], p, "Q")
    assert v.action == "pass" and v.reply is None
    assert v.headers == ["X-Postier-Alert: INFECTED, message contains virus: V1, V2",
                         "X-Postier-Alert: BANNED, message contains x.pdf.exe",
                         "X-Virus-Scanned: postier at example.test"]


def test_a_passing_category_does_not_hide_a_blocking_one():
    p = policy("final_virus_destiny = pass")
    f = Findings(av_status="infected", viruses=["V"], banned=BANNED.banned)
    v = decide(f, "", ["r@example.test"], p, "Q")
    assert (v.action, v.category) == ("reject", "banned")


def test_clean_message():
    v = decide(CLEAN, "s@x.test", ["r@example.test"], policy(), "Q")
    assert (v.action, v.category, v.blocked) == ("pass", "clean", {})
    assert v.headers == ["X-Virus-Scanned: postier at example.test"]
    v = decide(Findings(), "s@x.test", ["r@example.test"], policy(), "Q")
    assert v.headers == []          # nothing scanned: no X-Virus-Scanned


def test_spam_levels_and_subject_tag():
    p = policy()
    v = decide(spam(1.0), "s@x.test", ["r@example.test"], p, "Q")
    assert v.headers == ["X-Virus-Scanned: postier at example.test"] and not v.subject_tag
    v = decide(spam(3.0), "s@x.test", ["r@example.test"], p, "Q")
    assert "X-Spam-Flag: NO" in v.headers and v.subject_tag == ""
    assert v.remove_headers and "x-spam-status" in v.remove_headers
    v = decide(spam(7.0), "s@x.test", ["r@example.test"], p, "Q")
    assert v.action == "pass" and "X-Spam-Flag: YES" in v.headers
    assert v.subject_tag == "***SPAM***"
    v = decide(spam(7.0), "s@x.test", ["r@example.test"],
               policy("final_spam_destiny = reject\nspam_subject_tag ="), "Q")
    assert v.action == "reject" and v.reply.line() == "554 5.7.0 Reject, id=Q - SPAM, score=7"
    p = policy("spam_tag_level =\nspam_kill_level = 20\nfinal_spam_destiny = discard")
    v = decide(spam(7.0), "s@x.test", ["r@example.test"], p, "Q")
    assert v.action == "pass" and not any(h.startswith("X-Spam") for h in v.headers)


def test_bad_header_pass_and_reject():
    f = Findings(av_status="clean", bad_header=["Non-encoded 8-bit data (char E9 hex): Subject: x"])
    v = decide(f, "", ["r@example.test"], policy(), "Q")
    assert v.action == "pass"
    assert v.headers[0] == ("X-Postier-Alert: BAD HEADER SECTION, Non-encoded 8-bit data "
                            "(char E9 hex): Subject: x")
    v = decide(f, "", ["r@example.test"], policy("final_bad_header_destiny = reject"), "Q")
    assert v.action == "reject"


def test_scanner_failure_defers_unless_pass():
    failed = Findings(av_status="failed", av_failures=["clamd:unix:/x: Connection refused"])
    v = decide(failed, "", ["r@example.test"], policy(), "Q7")
    assert v.action == "defer"
    assert v.reply.line() == ("451 4.5.0 Error in processing, id=Q7, virus_scan FAILED: "
                              "AV: ALL VIRUS SCANNERS FAILED")
    v = decide(failed, "", ["r@example.test"], policy("av_failure_action = pass"), "Q7")
    assert v.action == "pass" and v.category == "unchecked"
    assert v.headers == ["X-Postier-Alert: UNCHECKED, virus scan failed"]
    # a message that is rejected anyway is rejected, not deferred
    f = Findings(av_status="failed", banned=BANNED.banned)
    assert decide(f, "", ["r@example.test"], policy(), "Q").action == "reject"


# ----------------------------------------------------------------------------- recipients


def test_bypass_maps_access_search_order():
    p = policy("content_bypass_maps = inline:{lover@example.test=virus, "
               "example.org=OK, postmaster@=banned}")
    assert p.recipient("lover+tag@example.test").bypass == {"virus"}
    assert p.recipient("any@sub.example.org").bypass == {"virus", "banned", "spam", "bad_header"}
    assert p.recipient("postmaster@example.net").bypass == {"banned"}
    assert p.recipient("other@example.test").bypass == frozenset()


def test_mixed_recipients_pass_and_drop():
    p = policy("content_bypass_maps = inline:{lover@example.test=virus}")
    v = decide(VIRUS, "s@x.test", ["lover@example.test", "r@example.test"], p, "Q")
    assert v.action == "pass" and v.blocked == {"r@example.test": "virus"}
    assert v.headers[0] == "X-Postier-Alert: INFECTED, message contains virus: Eicar-Signature"
    assert v.per_recipient["r@example.test"].code == 554
    assert v.per_recipient["lover@example.test"].code == 250
    # every recipient bypasses: nothing is blocked
    v = decide(VIRUS, "s@x.test", ["lover@example.test"], p, "Q")
    assert v.action == "pass" and v.blocked == {}


def test_mixed_reject_and_discard_rejects():
    p = policy("final_virus_destiny = discard\ncontent_bypass_maps = inline:{a@example.test=virus}")
    f = Findings(av_status="infected", viruses=["V"], banned=BANNED.banned)
    v = decide(f, "", ["a@example.test", "b@example.test"], p, "Q")
    # a: banned (reject), b: virus (discard) -> one reply: reject, as banned
    assert v.action == "reject" and v.category == "banned"


def test_whitelist_maps():
    p = policy("content_whitelist_maps = inline:{ { boss@example.test = friend@x.test, "
               "@partner.test }, all@example.test=OK}\nfinal_spam_destiny = reject")
    f = spam(20.0)
    assert decide(f, "friend@x.test", ["boss@example.test"], p, "Q").action == "pass"
    assert decide(f, "a@mail.partner.test", ["boss@example.test"], p, "Q").action == "pass"
    assert decide(f, "stranger@y.test", ["boss@example.test"], p, "Q").action == "reject"
    v = decide(f, "stranger@y.test", ["all@example.test"], p, "Q")
    assert v.action == "pass" and "X-Spam-Flag: NO" in v.headers and not v.subject_tag


@pytest.mark.parametrize("text,match", [
    ("final_virus_destiny = bounce", "final_virus_destiny"),
    ("av_failure_action = retry", "av_failure_action"),
    ("spam_kill_level = lots", "spam_kill_level"),
])
def test_bad_values(text, match):
    with pytest.raises(ConfigError, match=match):
        policy(text)


# ----------------------------------------------------------------------------- quarantine


def test_quarantine_file(tmp_path):
    v = decide(VIRUS, "s@x.test", ["a@example.test", "b@example.test"], policy(), "QID9")
    qdir = str(tmp_path / "q")
    msg = b"Subject: x\n\nbody\n"
    path = quarantine(qdir, v, "s@x.test", ["a@example.test", "b@example.test"],
                      BytesSource(msg))
    again = quarantine(qdir, v, "s@x.test", ["a@example.test"], BytesSource(msg))
    assert os.path.basename(path) == "virus-QID9" and os.path.basename(again) == "virus-QID9.1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as f:
        assert f.read() == (b"X-Envelope-From: <s@x.test>\n"
                            b"X-Envelope-To: <a@example.test>,\n <b@example.test>\n"
                            b"X-Quarantine-ID: <virus-QID9>\n"
                            b"X-Postier-Alert: VIRUS: Eicar-Signature\n" + msg)
