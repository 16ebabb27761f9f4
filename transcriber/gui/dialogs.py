"""Dialogs: past sessions, settings."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from transcriber.gui.settings import AppSettings
from transcriber.session.store import SessionStore
from transcriber.transcript.model import Transcript

MODELS = ("tiny.en", "base")


class SessionsDialog(QDialog):
    """Past recordings and files, newest first: open one, or delete it."""

    def __init__(self, store: SessionStore, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Sessions")
        self.resize(560, 400)
        self.store = store
        self.chosen: str | None = None
        self.list = QListWidget()
        self.list.itemDoubleClicked.connect(self.accept)
        open_button, delete_button = QPushButton("Open"), QPushButton("Delete…")
        open_button.clicked.connect(self.accept)
        delete_button.clicked.connect(self._delete)
        buttons = QHBoxLayout()
        buttons.addStretch()
        buttons.addWidget(delete_button)
        buttons.addWidget(open_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self._fill()

    def _fill(self) -> None:
        self.list.clear()
        for session in self.store.sessions():
            info = session.info
            minutes, seconds = divmod(int(info.duration_seconds), 60)
            label = f"{info.created.replace('T', ' ')}  ·  {info.title}  ·  {minutes}:{seconds:02d}"
            if info.state != "complete":
                label += f"  ·  {info.state}"
            item = QListWidgetItem(label)
            item.setData(256, session.id)
            self.list.addItem(item)

    def accept(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.chosen = item.data(256)
            super().accept()

    def _delete(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        answer = QMessageBox.question(self, "Delete session", f"Delete {item.text()} with its audio?")
        if answer == QMessageBox.StandardButton.Yes:
            self.store.delete(self.store.open(item.data(256)))
            self._fill()


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model = QComboBox()
        self.model.setEditable(True)  # a local CTranslate2 folder or .pt file also works
        self.model.addItems(MODELS)
        self.model.setCurrentText(settings.model)
        self.vad = QSpinBox()
        self.vad.setRange(0, 3)
        self.vad.setValue(settings.vad_aggressiveness)
        self.max_speakers = QSpinBox()
        self.max_speakers.setRange(1, 16)
        self.max_speakers.setValue(settings.max_speakers)
        self.separator = QCheckBox("two channels where voices overlap (experimental)")
        self.separator.setChecked(settings.separator)
        form = QFormLayout(self)
        form.addRow("Model", self.model)
        form.addRow("VAD aggressiveness (0-3)", self.vad)
        form.addRow("Maximum speakers", self.max_speakers)
        form.addRow("Separator", self.separator)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.settings = settings

    def result_settings(self) -> AppSettings:
        return AppSettings(
            model=self.model.currentText().strip() or self.settings.model,
            input_device=self.settings.input_device,
            vad_aggressiveness=self.vad.value(),
            max_speakers=self.max_speakers.value(),
            separator=self.separator.isChecked(),
        )


def speaker_choices(transcript: Transcript, exclude: str) -> list[tuple[str, str]]:
    """(label, id) of the speakers another one can be merged into."""
    return [(f"{transcript.display_name(s)} ({s})", s) for s in transcript.speakers if s != exclude]
