"""The real window under Xvfb (an X server, not the offscreen platform): open the
demo meeting, let it transcribe, save a screenshot as a test artifact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (apt: xvfb xauth)")
def test_main_window_screenshot_under_xvfb(tmp_path) -> None:
    from PySide6.QtGui import QImage

    output = ARTIFACTS / "main_window.png"
    output.unlink(missing_ok=True)
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "transcriber.gui.screenshot"]
        + [str(output), "--data-dir", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 speakers" in result.stdout, result.stdout
    image = QImage(str(output))
    assert image.width() >= 1000 and image.height() >= 600
    colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 37) for y in range(0, image.height(), 37)}
    assert len(colours) > 20, "the screenshot is blank"
