"""The main window: record, open, read, fix and export a meeting.

It renders what the :class:`Workspace` reports (engine events, progress,
problems) on a 50 ms timer and turns clicks into workspace calls; the
recording, recognition and transcript state all live in the workspace.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from transcriber.audio.capture import CaptureError, input_devices
from transcriber.audio.decode import AudioDecodeError, load_audio
from transcriber.audio.recorder import RecordingError
from transcriber.audio.replay import ReplaySource
from transcriber.engine.events import CostSample, SpeakerRelabelled, TurnBoundaryMoved, TurnDiscarded, TurnSplit
from transcriber.gui.cost_meter import CostMeter
from transcriber.gui.dialogs import SessionsDialog, SettingsDialog, speaker_choices
from transcriber.gui.settings import AppSettings
from transcriber.gui.transcript_view import TranscriptView, speaker_colour
from transcriber.session.runner import AudioSource, Finished, Problem
from transcriber.session.workspace import EngineLoader, Workspace
from transcriber.transcript.exporters import FORMATS

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEMO_INPUT = "demo meeting (test input)"
SHORTCUTS = {
    "record": "Ctrl+R",
    "pause": "Ctrl+P",
    "stop": "Ctrl+E",
    "open": "Ctrl+O",
    "export": "Ctrl+S",
    "find": "Ctrl+F",
    "sessions": "Ctrl+L",
}


class MainWindow(QMainWindow):
    def __init__(self, workspace: Workspace, settings: AppSettings, qsettings: QSettings | None = None):
        super().__init__()
        self.workspace = workspace
        self.settings = settings
        self.qsettings = qsettings
        self.problems: list[str] = []  # every problem shown, for tests and the status line
        self.setWindowTitle("Transcriber")
        self.resize(1200, 760)
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_toolbar()
        self._build_body()
        self._build_status_bar()
        self._search_hits: list[int] = []
        self._search_index = -1
        self._shown_speakers: list[tuple[str, str]] = []  # (id, name) as the list shows them

        self.poll_timer = QTimer(self)
        self.poll_timer.timeout.connect(self.poll)
        self.poll_timer.start(50)
        self.meter_timer = QTimer(self)
        self.meter_timer.timeout.connect(self._show_progress)
        self.meter_timer.start(250)
        self._update_actions()

    # -- construction ----------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut: str | None = None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setToolTip(f"{text} ({shortcut})")
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.record_action = self._action("Record", lambda: self.start_recording(), SHORTCUTS["record"])
        self.pause_action = self._action("Pause", self.toggle_pause, SHORTCUTS["pause"], checkable=True)
        self.stop_action = self._action("Stop", self.stop, SHORTCUTS["stop"])
        self.open_action = self._action("Open file…", self._ask_open, SHORTCUTS["open"])
        self.export_action = self._action("Export…", self._ask_export, SHORTCUTS["export"])
        self.find_action = self._action("Find", self._focus_search, SHORTCUTS["find"])
        self.sessions_action = self._action("Sessions…", self._ask_session, SHORTCUTS["sessions"])
        self.settings_action = self._action("Settings…", self._ask_settings)
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.open_action, self.sessions_action, self.export_action, self.settings_action):
            file_menu.addAction(action)
        record_menu = menu.addMenu("&Record")
        for action in (self.record_action, self.pause_action, self.stop_action):
            record_menu.addAction(action)
        menu.addMenu("&Edit").addAction(self.find_action)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Recording")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        for action in (self.record_action, self.pause_action, self.stop_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Input "))
        self.device_box = QComboBox()
        self.device_box.setMinimumWidth(260)
        self._fill_devices()
        self.device_box.currentIndexChanged.connect(self._device_chosen)
        toolbar.addWidget(self.device_box)
        self.level = QProgressBar()
        self.level.setRange(0, 60)
        self.level.setTextVisible(False)
        self.level.setFixedWidth(120)
        self.level.setToolTip("input level (dBFS, -60 to 0)")
        toolbar.addWidget(self.level)
        toolbar.addSeparator()
        for action in (self.open_action, self.export_action, self.sessions_action):
            toolbar.addAction(action)

    def _build_body(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText(f"Search the transcript ({SHORTCUTS['find']}; Enter: next)")
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self.next_match)
        self.view = TranscriptView()
        self.view.edit_requested.connect(self._ask_edit)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.view)

        self.speaker_list = QListWidget()
        rename, merge = QPushButton("Rename…"), QPushButton("Merge into…")
        rename.clicked.connect(self._ask_rename)
        merge.clicked.connect(self._ask_merge)
        speaker_buttons = QHBoxLayout()
        speaker_buttons.addWidget(rename)
        speaker_buttons.addWidget(merge)
        self.meter = CostMeter()
        self.meter.set_budget_points(self.workspace.budget_points(), self.workspace.current_budget())
        self.meter.budgetChanged.connect(self.workspace.set_compute_budget)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(QLabel("<b>Speakers</b>"))
        right_layout.addWidget(self.speaker_list, stretch=1)
        right_layout.addLayout(speaker_buttons)
        right_layout.addWidget(QLabel("<b>Compute cost</b>"))
        right_layout.addWidget(self.meter, stretch=3)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([760, 440])
        self.setCentralWidget(splitter)

    def _build_status_bar(self) -> None:
        self.state_label = QLabel()
        self.file_progress = QProgressBar()
        self.file_progress.setFixedWidth(220)
        self.file_progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.stop)
        bar = self.statusBar()
        bar.addWidget(self.state_label, 1)
        bar.addPermanentWidget(self.file_progress)
        bar.addPermanentWidget(self.cancel_button)

    def _fill_devices(self) -> None:
        self.device_box.addItem("Default input", "")
        for device in input_devices():
            self.device_box.addItem(device.label, device.name)
        self.device_box.addItem("Demo meeting (test input)", DEMO_INPUT)
        index = self.device_box.findData(self.settings.input_device)
        self.device_box.setCurrentIndex(max(0, index))

    # -- recording ---------------------------------------------------------------------------------
    def start_recording(self, source: AudioSource | None = None) -> None:
        """Record from the chosen input (``source``: another one, e.g. in tests)."""
        if self.workspace.busy:
            return
        device = self.device_box.currentData() or None
        try:
            if source is None and device == DEMO_INPUT:
                source = ReplaySource(load_audio(ASSETS / "demo_meeting.ogg"))
            self.workspace.start_recording(device=device, source=source)
        except (CaptureError, AudioDecodeError, OSError) as error:
            self.show_problem(f"Cannot record: {error}")
            return
        self._new_session_view()
        self.pause_action.setChecked(False)
        self._update_actions()

    def toggle_pause(self) -> None:
        if self.workspace.recording is None:
            self.pause_action.setChecked(False)
            return
        if self.pause_action.isChecked():
            self.workspace.pause()
        else:
            self.workspace.resume()
        self._update_actions()

    def stop(self) -> None:
        self.workspace.stop()
        self._update_actions()

    # -- files and sessions ----------------------------------------------------------------------
    def open_file(self, path: str | Path) -> bool:
        if self.workspace.busy:
            self.show_problem("Stop the current recording or transcription before opening a file.")
            return False
        try:
            self.workspace.open_file(path)
        except AudioDecodeError as error:
            self.show_problem(str(error))
            return False
        self._new_session_view()
        self._update_actions()
        return True

    def open_session(self, session_id: str) -> None:
        if self.workspace.busy:
            self.show_problem("Stop the current recording or transcription first.")
            return
        self.workspace.open_session(session_id)
        self._new_session_view()
        self.view.render(self.workspace.builder)
        self._show_speakers()
        self._update_actions()

    def _new_session_view(self) -> None:
        self.view.clear()
        self.meter.reset()
        self._show_speakers()
        session = self.workspace.session
        self.setWindowTitle(f"Transcriber - {session.info.title}" if session else "Transcriber")

    def offer_recovery(self) -> None:
        """Sessions that a crash interrupted: recover them (audio and transcript up to
        the last second on disk); offer to open the latest."""
        interrupted = self.workspace.store.interrupted()
        if not interrupted:
            return
        names = "\n".join(f"- {s.info.title}, {s.info.created.replace('T', ' ')}" for s in interrupted)
        answer = QMessageBox.question(
            self, "Recover recordings", f"These sessions were interrupted:\n{names}\n\nRecover and open the latest?"
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        recovered = []
        for session in interrupted:
            try:
                session.recover()
                recovered.append(session)
            except (OSError, RecordingError) as error:  # e.g. still no room for the FLAC
                self.show_problem(f"Cannot recover {session.folder}: {error}")
        if recovered:
            self.open_session(recovered[0].id)

    def export(self, path: str | Path, fmt: str | None = None) -> Path | None:
        try:
            return self.workspace.export(path, fmt)
        except (OSError, ValueError) as error:
            self.show_problem(f"Export failed: {error}")
            return None

    # -- edits ------------------------------------------------------------------------------------
    def rename_speaker(self, speaker: str, name: str) -> None:
        self.workspace.rename_speaker(speaker, name)
        self.view.render(self.workspace.builder)
        self._show_speakers()

    def merge_speakers(self, keep: str, absorb: str) -> None:
        self.workspace.merge_speakers(keep, absorb)
        self.view.render(self.workspace.builder)
        self._show_speakers()

    def edit_turn(self, turn_id: int, text: str) -> None:
        self.workspace.edit_turn(turn_id, text)
        self.view.render(self.workspace.builder, {turn_id})

    # -- rendering --------------------------------------------------------------------------------
    def poll(self) -> None:
        items = self.workspace.poll()
        if not items:
            return
        touched: set[int] = set()
        full = False
        for item in items:
            if isinstance(item, CostSample):
                self.meter.add_sample(item)
            elif isinstance(item, Problem):
                self.show_problem(item.message)
            elif isinstance(item, Finished):
                self._finished(item)
            elif isinstance(item, TurnSplit | TurnBoundaryMoved | TurnDiscarded | SpeakerRelabelled):
                full = True
            elif hasattr(item, "turn_id"):
                touched.add(item.turn_id)
        self.view.render(self.workspace.builder, None if full else touched)
        if full or touched:
            self._show_speakers()
        if self.view.search_text:  # the render highlighted new matches; count them in
            self._search_hits = self.view.matches(self.view.search_text)

    def _finished(self, item: Finished) -> None:
        self.view.render(self.workspace.builder)
        note = " (cancelled)" if item.cancelled else ""
        self.state_label.setText(f"Done{note}: session {item.session_id} saved.")
        self.pause_action.setChecked(False)
        self._update_actions()

    def _show_progress(self) -> None:
        progress = self.workspace.progress()
        busy = self.workspace.busy
        if progress is None:
            self.level.setValue(0)
            self.file_progress.setVisible(False)
            self.cancel_button.setVisible(False)
            return
        level = 0 if math.isinf(progress.level_dbfs) else int(max(0.0, min(60.0, progress.level_dbfs + 60.0)))
        self.level.setValue(level if self.workspace.recording else 0)
        is_file = progress.total_seconds is not None
        if busy and not is_file:  # a file is decoded ahead on purpose: no backlog to show
            self.meter.add_backlog(progress.recorded_seconds, progress.backlog_seconds)
        self.file_progress.setVisible(busy and is_file)
        self.cancel_button.setVisible(busy and is_file)
        if is_file and progress.total_seconds:
            self.file_progress.setValue(int(100 * progress.recognized_seconds / progress.total_seconds))
        if busy:
            state = "Paused" if self.pause_action.isChecked() else ("Transcribing" if is_file else "Recording")
            self.state_label.setText(
                f"{state}: {progress.recorded_seconds:.0f} s audio, {progress.recognized_seconds:.0f} s recognised,"
                f" backlog {progress.backlog_seconds:.1f} s"
                + (f", {progress.overflows} input overflows" if progress.overflows else "")
            )

    def _show_speakers(self) -> None:
        transcript = self.workspace.transcript
        rows = [(speaker, transcript.display_name(speaker)) for speaker in transcript.speakers]
        if rows == self._shown_speakers:  # most polls bring words, not speakers
            return
        self._shown_speakers = rows
        current = self.speaker_list.currentItem()
        selected = current.data(256) if current else None
        self.speaker_list.clear()
        for speaker, name in rows:
            item = QListWidgetItem(name if name == speaker else f"{name}  ({speaker})")
            item.setData(256, speaker)
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(speaker_colour(speaker)))
            item.setIcon(QIcon(swatch))
            self.speaker_list.addItem(item)
            if speaker == selected:
                self.speaker_list.setCurrentItem(item)

    def _update_actions(self) -> None:
        busy = self.workspace.busy
        recording = self.workspace.recording is not None
        self.record_action.setEnabled(not busy)
        self.pause_action.setEnabled(recording)
        self.stop_action.setEnabled(busy)
        self.open_action.setEnabled(not busy)
        self.sessions_action.setEnabled(not busy)
        self.device_box.setEnabled(not busy)
        self.settings_action.setEnabled(not busy)
        if not busy and self.workspace.loader.error is not None:
            self.state_label.setText(f"The model could not be loaded: {self.workspace.loader.error}")
        elif not busy and not self.state_label.text().startswith("Done"):
            self.state_label.setText("Ready to record." if self.workspace.session is None else "")
        self._show_progress()

    def show_problem(self, message: str) -> None:
        self.problems.append(message)
        self.state_label.setText(message)
        box = QMessageBox(QMessageBox.Icon.Warning, "Transcriber", message, parent=self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not exec(): recording and rendering go on while it shows

    # -- search -----------------------------------------------------------------------------------
    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _search_changed(self, text: str) -> None:
        self.view.search_text = text
        self.view.render(self.workspace.builder)
        self._search_hits = self.view.matches(text)
        self._search_index = -1

    def next_match(self) -> int | None:
        if not self._search_hits:
            return None
        self._search_index = (self._search_index + 1) % len(self._search_hits)
        turn_id = self._search_hits[self._search_index]
        self.view.show_block(turn_id)
        return turn_id

    # -- dialogs ----------------------------------------------------------------------------------
    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a recording",
            "",
            "Audio and video (*.wav *.flac *.ogg *.mp3 *.m4a *.aac *.mp4 *.webm *.mkv);;All files (*)",
        )
        if path:
            self.open_file(path)

    def _ask_export(self) -> None:
        if self.workspace.session is None:
            return
        filters = ";;".join(f"{fmt.upper()} (*{extension})" for fmt, (extension, _) in FORMATS.items())
        stem = Path(self.workspace.session.info.title).stem
        path, chosen = QFileDialog.getSaveFileName(self, "Export the transcript", f"{stem}.txt", filters)
        if path:
            fmt = chosen.split(" ")[0].lower() if chosen else None
            if fmt and not path.lower().endswith(FORMATS[fmt][0]):
                path += FORMATS[fmt][0]
            if self.export(path, fmt):
                self.state_label.setText(f"Exported {path}")

    def _ask_session(self) -> None:
        dialog = SessionsDialog(self.workspace.store, self)
        if dialog.exec() and dialog.chosen:
            self.open_session(dialog.chosen)

    def _ask_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            new = dialog.result_settings()
            if new.engine_settings() != self.settings.engine_settings():
                self.workspace.loader = EngineLoader(new.engine_settings())
            self.settings = new
            self._save_settings()

    def _selected_speaker(self) -> str | None:
        item = self.speaker_list.currentItem()
        return item.data(256) if item else None

    def _ask_rename(self) -> None:
        speaker = self._selected_speaker()
        if speaker is None:
            return
        current = self.workspace.transcript.display_name(speaker)
        name, ok = QInputDialog.getText(self, "Rename speaker", f"Name for {speaker}:", text=current)
        if ok:
            self.rename_speaker(speaker, name)

    def _ask_merge(self) -> None:
        speaker = self._selected_speaker()
        if speaker is None:
            return
        choices = speaker_choices(self.workspace.transcript, speaker)
        if not choices:
            return
        label, ok = QInputDialog.getItem(
            self, "Merge speakers", f"Merge {speaker} into:", [c[0] for c in choices], editable=False
        )
        if ok:
            self.merge_speakers(dict(choices)[label], speaker)

    def _ask_edit(self, turn_id: int) -> None:
        turn = self.workspace.transcript.turn(turn_id)
        text, ok = QInputDialog.getMultiLineText(self, "Edit turn", "Text of this turn:", turn.text)
        if ok and text != turn.text:
            self.edit_turn(turn_id, text)

    def _device_chosen(self) -> None:
        self.settings.input_device = self.device_box.currentData() or ""
        self._save_settings()

    def _save_settings(self) -> None:
        if self.qsettings is not None:
            self.settings.save(self.qsettings)

    # -- window events ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_file(url.toLocalFile())
                break

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if self.workspace.busy:
            answer = QMessageBox.question(self, "Quit", "Stop and save the current session, then quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.poll_timer.stop()
        self.meter_timer.stop()
        self.workspace.close()
        super().closeEvent(event)
