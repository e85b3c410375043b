"""Scheduling arithmetic (backoff, feedback, slow start, dead destinations)
and the log-line formatting of the queue manager."""

from __future__ import annotations

import pytest

from postier.qmgr import scheduler as S
from postier.qmgr.logfmt import delivery_line, format_tv

# Postfix's own test vectors for format_tv() (src/util/format_tv.in/.ref):
# value, significant digits, maximal decimals -> text
FORMAT_TV = [
    (1110, 2, 6, "1110"), (111, 2, 6, "111"), (11.1, 2, 6, "11"), (1.11, 2, 6, "1.1"),
    (0.111, 2, 6, "0.11"), (0.0111, 2, 6, "0.011"), (0.00111, 2, 6, "0.0011"),
    (0.000111, 2, 6, "0.00011"), (0.000011, 2, 6, "0.000011"),
    (1000, 2, 6, "1000"), (100, 2, 6, "100"), (10, 2, 6, "10"), (1, 2, 6, "1"),
    (0.1, 2, 6, "0.1"), (0.01, 2, 6, "0.01"), (0.001, 2, 6, "0.001"),
    (0.0001, 2, 6, "0.0001"), (0.00001, 2, 6, "0.00001"), (0.000001, 2, 6, "0.000001"),
    (996, 2, 6, "996"), (99.6, 2, 6, "100"), (9.96, 2, 6, "10"), (0.996, 2, 6, "1"),
    (0.0996, 2, 6, "0.1"), (0.00996, 2, 6, "0.01"), (0.000996, 2, 6, "0.001"),
    (1.11, 1, 6, "1"), (0.111, 1, 6, "0.1"), (0.0111, 1, 6, "0.01"),
    (99.6, 1, 6, "100"), (9.96, 1, 6, "10"), (0.996, 1, 6, "1"),
    # the log's own setting: delay_logging_resolution_limit = 2
    (0.001, 2, 2, "0"), (0.004, 2, 2, "0"), (0.005, 2, 2, "0.01"), (5.1, 2, 2, "5.1"),
    (0.123, 2, 2, "0.12"), (7.14, 2, 2, "7.1"), (123.7, 2, 2, "124"),
]


@pytest.mark.parametrize("value,sig,maxd,want", FORMAT_TV)
def test_format_tv_matches_postfix_vectors(value, sig, maxd, want):
    assert format_tv(value, sig, maxd) == want


def test_delivery_line_shape():
    line = delivery_line("ABC", "u@x.test", "U@X.TEST", "mx[192.0.2.1]:25", 1.234,
                         (0.1, 0.01, 0.5, 0.6), "2.0.0", "sent", "250 2.0.0 Ok")
    # orig_to only when it differs case-insensitively (log_adhoc.c)
    assert line == ("ABC: to=<u@x.test>, relay=mx[192.0.2.1]:25, delay=1.2, "
                    "delays=0.1/0.01/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
    line = delivery_line("ABC", "u@x.test", "alias@x.test", "none", 0, (0, 0, 0, 0),
                         "4.3.0", "deferred", "mail transport unavailable")
    assert line == ("ABC: to=<u@x.test>, orig_to=<alias@x.test>, relay=none, delay=0, "
                    "delays=0/0/0/0, dsn=4.3.0, status=deferred (mail transport unavailable)")


def test_delivery_line_conn_use_after_relay():
    # log_adhoc.c: ", conn_use=%d" (reuse_count + 1) right after relay=, only
    # for a reused connection (the shape of real Postfix's smtp lines)
    line = delivery_line("ABC", "c@d.test", "", "127.0.0.1[127.0.0.1]:46007", 0.03,
                         (0.02, 0.02, 0, 0), "2.0.0", "sent", "250 2.0.0 Ok", conn_use=15)
    assert line == ("ABC: to=<c@d.test>, relay=127.0.0.1[127.0.0.1]:46007, conn_use=15, "
                    "delay=0.03, delays=0.02/0.02/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)")
    for first_use in (0, 1):
        assert "conn_use" not in delivery_line("ABC", "c@d.test", "", "h[192.0.2.1]:25", 0,
                                               (0, 0, 0, 0), "2.0.0", "sent", "250 Ok",
                                               conn_use=first_use)


def test_backoff_follows_message_age():
    mn, mx = 300, 4000
    arrival = 1_000_000.0
    # age below the minimum: minimal_backoff_time
    assert S.backoff_delay(arrival + 10, arrival, mn, mx) == 300
    # in between: the age itself (so retries spread out: 5, 10, 20, 40 minutes ...)
    assert S.backoff_delay(arrival + 600, arrival, mn, mx) == 600
    assert S.backoff_delay(arrival + 1200, arrival, mn, mx) == 1200
    # capped by maximal_backoff_time
    assert S.backoff_delay(arrival + 86400, arrival, mn, mx) == 4000
    # no arrival time: the minimum
    assert S.backoff_delay(arrival, 0, mn, mx) == 300


def test_retry_schedule_with_defaults():
    """Successive retry times of a message that keeps failing, with
    Postfix's defaults: the age doubles at each attempt until the cap."""
    arrival = 1_000_000.0
    t, times = arrival, []
    for _ in range(8):
        t += S.backoff_delay(t, arrival, 300, 4000)
        times.append(t - arrival)
    assert times == [300, 600, 1200, 2400, 4800, 8800, 12800, 16800]


@pytest.mark.parametrize("text,window,value", [
    ("1", 5, 1.0), ("0.5", 5, 0.5), ("1/8", 3, 0.125), ("1/concurrency", 4, 0.25),
    ("1/sqrt_concurrency", 4, 0.5), (" 1 / concurrency ", 2, 0.5)])
def test_parse_feedback(text, window, value):
    assert S.parse_feedback(text).value(window) == pytest.approx(value)


def test_parse_feedback_rejects_unreasonable():
    warned = []
    fb = S.parse_feedback("2", "smtp_destination_concurrency_positive_feedback", warned.append)
    assert fb.value(7) == 1.0
    assert warned == ["smtp_destination_concurrency_positive_feedback: ignoring malformed or "
                      "unreasonable feedback: 2"]
    assert S.parse_feedback("x/y", "n", warned.append).value(3) == 1.0


def _queue(**kw) -> S.DestQueue:
    ts = S.TransportSettings(name="smtp", **kw)
    return S.DestQueue("example.test", "example.test", ts)


def test_slow_start_and_growth():
    q = _queue(concurrency_limit=20, initial_concurrency=5)
    assert q.window == 5
    # grows by one per success while busy + initial allows, up to the limit
    q.busy = 5
    for _ in range(3):
        q.positive()
    assert q.window == 8
    q.busy = 1                  # little load: the window stays near busy + initial
    for _ in range(10):
        q.positive()
    assert q.window == 8
    q.busy = 30
    for _ in range(40):
        q.positive()
    assert q.window == 20       # the destination concurrency limit


def test_initial_window_capped_by_limit():
    assert _queue(concurrency_limit=2, initial_concurrency=5).window == 2
    assert _queue(concurrency_limit=0, initial_concurrency=5).window == 5


def test_fractional_feedback():
    q = _queue(concurrency_limit=0, initial_concurrency=4,
               positive=S.Feedback(1.0, "concurrency"))
    q.busy = 100
    for _ in range(4):
        q.positive()
    assert q.window == 5        # 4 x 1/4 = one step


def test_negative_feedback_and_failed_cohorts():
    # qmgr_queue_throttle(): the first failure after a reset costs two window
    # slots (failure starts at 0), later ones one; fail_cohorts adds 1/window
    q = _queue(concurrency_limit=20, initial_concurrency=5, failed_cohort_limit=1)
    assert q.negative("4.4.1", "refused") is False and q.window == 3      # cohorts 0.2
    assert q.negative("4.4.1", "refused") is False and q.window == 2      # 0.53
    assert q.negative("4.4.1", "refused") is True and q.dead              # 1.03 >= 1
    assert q.dead_status == "4.4.1"
    # a success in between resets fail_cohorts
    q = _queue(concurrency_limit=20, initial_concurrency=5, failed_cohort_limit=1)
    q.negative("4.4.1", "refused")
    q.negative("4.4.1", "refused")
    q.busy = 10
    q.positive()
    assert q.fail_cohorts == 0 and q.negative("4.4.1", "refused") is False
    q2 = _queue(concurrency_limit=20, initial_concurrency=1, failed_cohort_limit=1)
    assert q2.negative("4.4.1", "refused") is True
    assert q2.dead and q2.dead_reason == "refused" and not q2.ready()
    q2.revive()
    assert q2.window == 1 and not q2.dead and q2.dead_reason == ""
    q2.negative("4.4.1", "refused")
    q2.busy = 3
    q2.revive()
    assert q2.window == 3       # as many as are still in progress


def test_failed_cohort_limit_zero_never_kills():
    q = _queue(concurrency_limit=20, initial_concurrency=1, failed_cohort_limit=0)
    for _ in range(50):
        assert q.negative("4.4.1", "refused") is False
    assert q.window == 1 and not q.dead


def test_transport_settings_from_config():
    from postier.config import Config
    cfg = Config.from_text("default_destination_concurrency_limit = 7\n"
                           "relay_destination_concurrency_limit = 3\n"
                           "relay_destination_recipient_limit = 10\n"
                           "initial_destination_concurrency = 2\n"
                           "default_destination_concurrency_negative_feedback = 1/8\n",
                           master_text="relay unix - - n - - smtp\nsmtp unix - - n - 4 smtp\n")
    relay = S.TransportSettings.from_config(cfg, "relay", "smtp", 100)
    assert (relay.concurrency_limit, relay.recipient_limit, relay.initial_concurrency) == (3, 10, 2)
    assert relay.negative.value(1) == pytest.approx(0.125)
    smtp = S.TransportSettings.from_config(cfg, "smtp", "smtp", 4)
    assert (smtp.concurrency_limit, smtp.recipient_limit, smtp.process_limit) == (7, 50, 4)
    local = S.TransportSettings.from_config(cfg, "local", "local", 100)
    assert (local.concurrency_limit, local.recipient_limit) == (2, 1)
