"""The HTML report opens in a browser: headless Chromium (Debian `chromium`) takes a
screenshot of report.html; the plots it references must exist, be of the expected size
and not blank, and so must the screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "unit", "bench"))

from _results import result  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                                 "(tools/setup.sh --test installs it)")]


def image(path: str):
    mpimg = pytest.importorskip("matplotlib.image")
    return mpimg.imread(path)


def not_blank(img) -> bool:
    """More than one colour, and no colour covering everything."""
    import numpy as np
    flat = img.reshape(-1, img.shape[-1])[:, :3] if img.ndim == 3 else img.reshape(-1, 1)
    return bool(np.ptp(flat, axis=0).max() > 0.05)


def test_report_renders_in_chromium(tmp_path):
    pytest.importorskip("matplotlib")
    import re

    from postier.bench.report import PLOT_SIZE, write_report
    out = write_report(result(), str(tmp_path / "results"))
    report = os.path.join(out, "report.html")
    html = open(report, encoding="utf-8").read()
    srcs = re.findall(r'<img src="([^"]+)" width="(\d+)" height="(\d+)"', html)
    assert len(srcs) == 4
    for src, w, h in srcs:
        path = os.path.join(out, src)
        assert os.path.isfile(path), src
        img = image(path)
        assert (img.shape[1], img.shape[0]) == PLOT_SIZE == (int(w), int(h))
        assert not_blank(img), f"{src} is blank"
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={shot}",
                        "--window-size=1200,2000", f"file://{report}"],
                       capture_output=True, text=True, timeout=120)
    assert shot.exists(), p.stderr[-2000:]
    img = image(str(shot))
    assert (img.shape[1], img.shape[0]) == (1200, 2000)
    assert not_blank(img)
    # the plots are drawn inside the page: the area where the first one sits is not
    # white only (the table and headings alone leave it empty)
    lower = img[700:1400, 0:1000]
    assert not_blank(lower)
