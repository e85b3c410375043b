"""Fixtures for the postier.dns unit tests: `logs` (lines postier.log
emits), `clock` (a FakeClock); the fakes themselves are in dns_fakes.py."""

from __future__ import annotations

import pytest
from dns_fakes import FakeClock, LogCapture


@pytest.fixture
def logs(monkeypatch):
    return LogCapture(monkeypatch)


@pytest.fixture
def clock():
    return FakeClock()
