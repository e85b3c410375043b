"""Every dialog of smtpd_restrictions.json (recorded from real Postfix 3.7.11)
replayed against `postier run`: reply code and text must match at every step.

One postier instance per scenario (same overrides and tables), as the
recording harness did.  Runs with the native modules and with the pure twins.
"""

from __future__ import annotations

import pytest
from smtp_harness import PostierInstance, comparable, load_fixture, run_dialog

FIXTURE = load_fixture("smtpd_restrictions.json")
DIALOGS = FIXTURE["dialogs"]


@pytest.fixture(scope="module", params=["native", "pure"])
def instance(request):
    inst = PostierInstance(FIXTURE, pure=request.param == "pure")
    yield inst
    inst.close()


@pytest.mark.slow
@pytest.mark.parametrize("dialog", DIALOGS, ids=[d["id"] for d in DIALOGS])
def test_dialog_matches_postfix(instance, dialog):
    if instance.scenario != dialog["scenario"]:
        instance.configure(dialog)
    got = comparable(run_dialog(instance.port, dialog))
    want = comparable(dialog["dialog"])
    assert got == want, f"postier output:\n{instance.output()[-1500:]}"
