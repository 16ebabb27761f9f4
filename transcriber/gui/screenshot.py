"""Open a recording in the real app window and save a screenshot of it.

    python -m transcriber.gui.screenshot OUT.png [AUDIO] [--data-dir DIR]

Used for the README's picture and by the Xvfb test. The session goes to
``--data-dir`` (a temporary folder by default), not to the user's sessions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from transcriber.gui.app import build_window
from transcriber.session.store import SessionStore

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo_meeting.ogg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("audio", nargs="?", type=Path, default=DEMO)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data_dir or Path(scratch)
        qsettings = QSettings(str(data / "settings.ini"), QSettings.Format.IniFormat)
        window = build_window(SessionStore(data / "sessions"), qsettings)
        window.resize(1280, 800)
        window.show()
        if not window.open_file(args.audio):
            print(f"error: {window.problems[-1]}", file=sys.stderr)
            return 1
        deadline = time.monotonic() + args.timeout
        while window.workspace.busy and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        window.poll()
        speakers = window.workspace.transcript.speakers
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        window.view.scroll_to_live_edge()
        app.processEvents()
        screen = window.screen().grabWindow(window.winId()) if window.windowHandle() else window.grab()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        saved = screen.save(str(args.output))
        window.close()
    print(f"{args.output}: {screen.width()}x{screen.height()}, {len(speakers)} speakers")
    return 0 if saved else 1


if __name__ == "__main__":
    sys.exit(main())
