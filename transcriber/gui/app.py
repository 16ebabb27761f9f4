"""Start the desktop app: ``transcriber`` with no arguments, or ``python -m transcriber``."""

from __future__ import annotations

import sys

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from transcriber.gui.main_window import MainWindow
from transcriber.gui.settings import AppSettings
from transcriber.session.store import SessionStore
from transcriber.session.workspace import EngineLoader, Workspace


def build_window(store: SessionStore | None = None, qsettings: QSettings | None = None) -> MainWindow:
    """The main window with its workspace; the model starts loading in the background."""
    qsettings = qsettings if qsettings is not None else QSettings("transcriber", "transcriber")
    settings = AppSettings.load(qsettings)
    workspace = Workspace(store or SessionStore(), EngineLoader(settings.engine_settings()))
    return MainWindow(workspace, settings, qsettings)


def main(argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Transcriber")
    window = build_window()
    window.show()
    QTimer.singleShot(0, window.offer_recovery)
    return app.exec()
