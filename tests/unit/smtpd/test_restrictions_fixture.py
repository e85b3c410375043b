"""The restriction engine against the dialogs real Postfix 3.7.11 recorded
(tests/compat/smtpd_restrictions.json): every reply that restrictions or
address parsing decide, and every log line they write, must be Postfix's.

The SMTP server is not involved: test_restrictions_support.Dialog does the
server's bookkeeping around the engine.  Dialogs about the server's own
protocol handling (size limits, command syntax) are replayed too, but only
the steps the engine or parse_path answer are compared.
"""

from __future__ import annotations

import pytest
from test_restrictions_support import DIALOGS, Dialog, fixture_log

ENGINE_SCENARIOS = (
    "relay_explicit", "relay_default_compat", "client_access_hash", "client_access_no_delay",
    "helo_sender_no_delay", "helo_checks_delay_yes", "sender_access_hash",
    "recipient_access_actions", "restriction_class_insiders_only", "non_fqdn_and_syntax",
    "data_restrictions", "size_and_recipient_limits", "protocol_basics",
)
IDS = [i for i, d in DIALOGS.items() if d["scenario"] in ENGINE_SCENARIOS]


@pytest.mark.parametrize("dialog_id", IDS)
def test_replies_and_log_match_postfix(dialog_id, tmp_path, monkeypatch):
    d = Dialog(DIALOGS[dialog_id], tmp_path, monkeypatch)
    d.run()
    mismatches = [(i, got, want) for i, got, want in d.checked if got != want]
    assert not mismatches, f"step, got, want: {mismatches}"
    assert d.log_lines() == fixture_log(DIALOGS[dialog_id])


def test_every_engine_dialog_is_covered():
    # guards the scenario list above against a fixture with new scenarios
    scenarios = {d["scenario"] for d in DIALOGS.values()}
    assert scenarios <= set(ENGINE_SCENARIOS)
    assert len(IDS) == len(DIALOGS)
