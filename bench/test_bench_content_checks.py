"""header_checks + mime_header_checks + body_checks throughput: the lab's
tables (the `mx` mode of the Postfix baseline script: 10 header rules, 3
MIME header rules, 5 body rules, all regexp:) over a 2 KB and a 50 KB
message (multipart: a text part and a base64 attachment), through
postier.cleanup.Cleanup fed in 64 KiB chunks as the SMTP server does.

Variants, measured in the same run:
* `hyperscan`: the real path: body lines in whole runs, the candidate lines
  found by postier.maps.patterns.LineScanner, only those looked up;
* `per-line`: the same, but every body line looked up in the regexp table
  (one Hyperscan scan per line plus the rule walk) -- what a straight port
  of cleanup's body callback does;
* `naive-re`: every body line against every body rule with Python `re`
  (first match wins), no MIME parsing -- the textbook loop;
* `no-checks`: cleanup without any content checks, for scale.

msg/s and MB/s (best of 5 runs of each variant, interleaved in one process)
go into extra_info and are printed with the ratios.
POSTIER_BENCH_SMALL=1 keeps the run short.  No timing assertions; the checks
make sure every variant did the work (the clean message passes, and a
message with a bad body line is rejected by the checked variants).
"""

from __future__ import annotations

import base64
import os
import re
import sys
import time

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)

from postier.cleanup import Cleanup, CleanupSettings, Rcpt  # noqa: E402
from postier.config import Config  # noqa: E402
from postier.content import checks as checks_mod  # noqa: E402
from postier.maps import clear_cache  # noqa: E402

SMALL = os.environ.get("POSTIER_BENCH_SMALL") == "1"
CHUNK = 64 * 1024
RECEIVED = (b"Received: from client.lab.test (client.lab.test [203.0.113.7])\n"
            b"\tby mx.lab.test (Postfix) with ESMTP id QID\n"
            b"\tfor <rcpt@example.test>; Sat, 28 Nov 2026 05:51:02 +0000 (UTC)\n")

# /work/shared/peers/postfix_bench.sh, mode mx
HEADER_CHECKS = r"""/^Subject:.*\b(viagra|cialis|casino)\b/            REJECT spam subject
/^Subject:.*make money fast/                        REJECT spam subject
/^From:.*@(spam|junk)\.example\.invalid/            REJECT blocked sender
/^To:.*undisclosed-recipients/                      REJECT no undisclosed recipients
/^Received:.*\[(10\.66\.)/                          REJECT relayed via blocked net
/^X-Mailer:.*(Extractor|Bulk Mailer|Group Mail)/    REJECT bulk mailer
/^Message-ID:.*@localhost\.localdomain>/            REJECT bogus message id
/^Content-Type:.*charset="?(ks_c_5601|big5|gb2312)/ REJECT unwanted charset
/^X-Priority:.*1 \(Highest\)/                       WARN high priority
/^Date:.* 19[0-9][0-9] /                            REJECT date in last century
"""
MIME_HEADER_CHECKS = r"""/^Content-(Type|Disposition):.*name="?.*\.(exe|scr|pif|com|bat|vbs|cpl|lnk)"?$/   REJECT executable attachment
/^Content-Type:.*message\/partial/                                                 REJECT no partial messages
/^Content-Transfer-Encoding:.*uuencode/                                            REJECT uuencode not accepted
"""
BODY_CHECKS = r"""/^.*click here to (unsubscribe|be removed)/   REJECT spam body
/^TVqQAAMAAAAEAAAA/                           REJECT base64 PE executable
/<iframe[^>]+src=/                            REJECT iframe in body
/^.*www\.(spam|junk)\.example\.invalid/       REJECT spam URL
/^begin 6[0-7][0-7] .*\.(exe|scr|pif)$/       REJECT uuencoded executable
"""


def message(size: int, bad: bytes = b"") -> bytes:
    head = (b"From: Alice Example <alice@client.lab.test>\nTo: rcpt@example.test\n"
            b"Subject: quarterly report\nDate: Mon, 01 Jan 2024 00:00:00 +0000\n"
            b"Message-ID: <bench.1@client.lab.test>\nMIME-Version: 1.0\n"
            b"X-Mailer: LabMail 1.0\n"
            b'Content-Type: multipart/mixed; boundary="=_bench_boundary"\n\n'
            b"This is a multi-part message in MIME format.\n\n"
            b"--=_bench_boundary\nContent-Type: text/plain; charset=us-ascii\n"
            b"Content-Transfer-Encoding: 7bit\n\n")
    text = (b"Hello,\n\nplease find the report attached. The numbers look fine this time,\n"
            b"see section 3 for the details and the usual caveats.\n\n" + bad + b"Regards,\nAlice\n\n")
    att_head = (b"--=_bench_boundary\nContent-Type: application/pdf; name=\"report.pdf\"\n"
                b"Content-Transfer-Encoding: base64\n"
                b"Content-Disposition: attachment; filename=\"report.pdf\"\n\n")
    tail = b"\n--=_bench_boundary--\n"
    room = max(0, size - len(head) - len(text) - len(att_head) - len(tail))
    raw = bytes((i * 37 + 11) % 256 for i in range(room * 3 // 4 + 3))
    b64 = base64.encodebytes(raw)[:room]
    b64 = b64[:b64.rfind(b"\n") + 1] if b"\n" in b64 else b64
    return head + text + att_head + b64 + tail


def settings(tmp, *, checks: bool = True) -> CleanupSettings:
    conf = ("myhostname = mx.lab.test\nmydomain = lab.test\nmyorigin = lab.test\n"
            "mydestination =\nmynetworks = 198.51.100.250/32\nsmtputf8_enable = no\n")
    if checks:
        for name, text in (("header_checks", HEADER_CHECKS), ("mime_header_checks", MIME_HEADER_CHECKS),
                           ("body_checks", BODY_CHECKS)):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
            conf += f"{name} = regexp:{tmp}/{name}\n"
    clear_cache()
    return CleanupSettings.from_config(Config.from_text(conf))


def run_cleanup(s: CleanupSettings, msg: bytes):
    c = Cleanup(s, queue_id="QID", sender="alice@client.lab.test",
                recipients=[Rcpt("rcpt@example.test", "", "rfc822;rcpt@example.test")],
                client_addr="203.0.113.7", real_addr="203.0.113.7",
                log_origin="client.lab.test[203.0.113.7]", proto="ESMTP", helo="client.lab.test")
    n = len(c.received(RECEIVED))
    for i in range(0, len(msg), CHUNK):
        n += len(c.feed(msg[i:i + CHUNK]))
    n += len(c.finish())
    return c, n


_NAIVE = [re.compile(p.encode(), re.I) for p in
          (r"^.*click here to (unsubscribe|be removed)", r"^TVqQAAMAAAAEAAAA", r"<iframe[^>]+src=",
           r"^.*www\.(spam|junk)\.example\.invalid", r"^begin 6[0-7][0-7] .*\.(exe|scr|pif)$")]


def naive_body(msg: bytes) -> int:
    """Every line against every body rule (no MIME): returns the index of
    the first rejected line or -1."""
    for n, line in enumerate(msg.split(b"\n")):
        if line:
            for rx in _NAIVE:
                if rx.search(line):
                    return n
    return -1


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("content_checks"))


def _time(fn, rounds: int, repeat: int = 5) -> float:
    """Seconds per call: the best of `repeat` runs of `rounds` calls (the box
    is shared, so the minimum is the fairest comparison)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - t0) / rounds)
    return best


@pytest.mark.parametrize("size", [2 * 1024, 50 * 1024], ids=["2KB", "50KB"])
def test_bench_content_checks(benchmark, monkeypatch, tmp, size):
    msg = message(size)
    bad = message(size, b"To stop these mails click here to unsubscribe now.\n")
    s = settings(tmp)
    s_none = settings(tmp, checks=False)
    # every variant does the work
    c, _ = run_cleanup(s, msg)
    assert c.error is None
    c, _ = run_cleanup(s, bad)
    assert str(c.error) == "550 5.7.1 spam body"
    assert naive_body(msg) == -1 and naive_body(bad) > 0

    rounds = 20 if SMALL else 200
    out = benchmark.pedantic(run_cleanup, args=(s, msg), rounds=rounds, iterations=1)
    assert out[1] > size
    mean = _time(lambda: run_cleanup(s, msg), rounds)

    with monkeypatch.context() as m:
        m.setattr(checks_mod.CheckMaps, "scanner", property(lambda self: None))
        c, _ = run_cleanup(s, bad)
        assert str(c.error) == "550 5.7.1 spam body"
        per_line = _time(lambda: run_cleanup(s, msg), rounds)
    naive = _time(lambda: naive_body(msg), rounds)
    plain = _time(lambda: run_cleanup(s_none, msg), rounds)

    for name, t in (("hyperscan", mean), ("per-line", per_line), ("naive-re", naive),
                    ("no-checks", plain)):
        benchmark.extra_info[f"{name} msg/s"] = round(1 / t)
        benchmark.extra_info[f"{name} MB/s"] = round(size / t / 1e6, 1)
    benchmark.extra_info["per-line/hyperscan"] = round(per_line / mean, 2)
    print(f"\ncontent checks, {size // 1024} KB message: hyperscan {1 / mean:.0f} msg/s "
          f"({size / mean / 1e6:.1f} MB/s); per-line lookups {1 / per_line:.0f} msg/s "
          f"(hyperscan x{per_line / mean:.1f} faster); naive re loop (body only) {1 / naive:.0f} msg/s; "
          f"cleanup without checks {1 / plain:.0f} msg/s")
