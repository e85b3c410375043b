"""The master's restart policy (postier.master.supervisor.Backoff) and the
small pure helpers of the supervisor: worker counts, master_service_disable."""

from __future__ import annotations

import pytest

from postier.config import Config
from postier.master.supervisor import STABLE_TIME, Backoff, disabled, is_smtpd, worker_count


def test_first_crash_of_a_ready_worker_restarts_at_once():
    b = Backoff(throttle=60)
    assert b.delay(lived=0.5, was_ready=True) == 0.0


def test_repeated_crashes_back_off_exponentially_up_to_the_throttle_time():
    b = Backoff(throttle=10)
    delays = [b.delay(lived=0.1, was_ready=True) for _ in range(8)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_a_worker_that_lived_long_enough_is_healthy_again():
    b = Backoff(throttle=60)
    for _ in range(4):
        b.delay(lived=0.1, was_ready=True)
    assert b.delay(lived=0.1, was_ready=True) == 8.0
    assert b.delay(lived=STABLE_TIME + 1, was_ready=True) == 0.0
    assert b.delay(lived=0.1, was_ready=True) == 1.0


def test_startup_failure_is_throttled_for_the_whole_throttle_time():
    b = Backoff(throttle=60)
    assert b.delay(lived=0.2, was_ready=False) == 60.0
    assert b.throttled(was_ready=False)
    assert not b.throttled(was_ready=True)
    # and it counts as a failure for what follows
    assert b.delay(lived=0.2, was_ready=True) == 1.0


def cfg(main: str = "", master: str = "smtp inet n - n - - smtpd\n") -> Config:
    return Config.from_text(main, "/nonexistent/main.cf", master_text=master)


@pytest.mark.parametrize("main, maxproc, cpus, want", [
    ("smtpd_worker_processes = 3", "-", 2, 3),      # explicit
    ("smtpd_worker_processes = 3", "2", 2, 2),      # capped by master.cf maxproc
    ("", "-", 2, 2),                                # 0 = one per CPU
    ("", "-", 8, 8),
    ("", "1", 8, 1),
    ("default_process_limit = 4", "-", 8, 4),       # "-" = default_process_limit
    ("", "0", 6, 6),                                # 0 = no process limit
])
def test_worker_count(monkeypatch, main, maxproc, cpus, want):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))
    c = cfg(main, f"smtp inet n - n - {maxproc} smtpd\n")
    svc = c.services[0]
    assert worker_count(c.for_service(svc), svc) == want


def test_worker_count_per_service_override(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    c = cfg("", "smtp inet n - n - - smtpd -o smtpd_worker_processes=1\n"
                "2525 inet n - n - - smtpd\n")
    a, b = c.services
    assert worker_count(c.for_service(a), a) == 1
    assert worker_count(c.for_service(b), b) == 2


def test_master_service_disable_by_type_and_by_name():
    c = cfg("", "smtp inet n - n - - smtpd\n127.0.0.1:2525 inet n - n - - smtpd\n"
                "pickup unix n - n 60 1 pickup\n")
    smtp, alt, pickup = c.services
    assert disabled(smtp, ["inet"]) and disabled(alt, ["INET"])
    assert not disabled(pickup, ["inet"])
    assert disabled(alt, ["127.0.0.1:2525/inet"]) and not disabled(smtp, ["127.0.0.1:2525/inet"])
    assert disabled(pickup, ["pickup/unix"]) and not disabled(pickup, ["pickup/inet"])
    assert is_smtpd(smtp) and not is_smtpd(pickup)
