"""The desktop app with real widgets (offscreen) and the real model: record from a
test source, open a file, rename, merge, edit, search, export, recover."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, SHARED_DATA, needs_shared_data

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QInputDialog, QMessageBox  # noqa: E402

from transcriber.audio.recorder import PcmRecorder  # noqa: E402
from transcriber.audio.replay import ReplaySource  # noqa: E402
from transcriber.engine.events import CostSample, TurnEnded, TurnStarted, WordsCommitted  # noqa: E402
from transcriber.gui.main_window import DEMO_INPUT, SHORTCUTS, MainWindow  # noqa: E402
from transcriber.gui.settings import AppSettings  # noqa: E402
from transcriber.session.store import SessionInfo, SessionStore  # noqa: E402
from transcriber.session.workspace import EngineLoader, EngineSettings, Workspace  # noqa: E402
from transcriber.transcript.journal import JournalWriter  # noqa: E402
from transcriber.transcript.model import Word  # noqa: E402

JFK = SHARED_DATA / "utterances/jfk_whisper/jfk.flac"
DEMO = Path(__file__).resolve().parents[1] / "assets/demo_meeting.ogg"


@pytest.fixture
def window(qtbot, tmp_path: Path, loaded_engine):
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    loader = EngineLoader(EngineSettings(), create=lambda **_: loaded_engine)
    main = MainWindow(Workspace(SessionStore(tmp_path / "sessions"), loader), AppSettings(), qsettings)
    main.show()
    yield main
    # not qtbot.addWidget: pytest-qt would close the window before this runs, and with
    # a recording still going (a test that failed midway) closing asks the user first
    main.workspace.close()
    main.close()
    main.deleteLater()


def _wait_done(qtbot, window: MainWindow, timeout_s: float = 180) -> None:
    qtbot.waitUntil(lambda: not window.workspace.busy, timeout=int(timeout_s * 1000))
    window.poll()  # render what the last poll did not see


def test_qt_calls_keep_none_alive(window: MainWindow) -> None:
    """PySide6 6.12.0 on Python 3.11 dropped a reference to None on every call that
    returns nothing; the app then aborted after a few thousand UI updates."""
    before = sys.getrefcount(None)
    for _ in range(2000):
        window.state_label.setText("x")
        window.level.setValue(3)
    assert sys.getrefcount(None) - before > -100


def test_window_is_ready_to_record(window: MainWindow) -> None:
    assert window.record_action.isEnabled() and not window.stop_action.isEnabled()
    assert window.device_box.findData(DEMO_INPUT) >= 0
    assert window.record_action.shortcut().toString() == SHORTCUTS["record"]
    assert window.export_action.shortcut().toString() == SHORTCUTS["export"]
    assert "Ready" in window.state_label.text()


def test_recording_from_a_test_source_shows_live_turns(qtbot, window: MainWindow) -> None:
    from transcriber.audio.decode import load_audio

    audio = load_audio(DEMO)
    source = ReplaySource(audio, speed=4.0)
    window.start_recording(source=source)
    assert window.workspace.recording is not None
    assert window.stop_action.isEnabled() and not window.record_action.isEnabled()
    # while it records, turns appear with a <sot> marker and the speaker's name
    qtbot.waitUntil(lambda: len(window.view.blocks) >= 2, timeout=60_000)
    first = window.view.blocks[window.view.order[0]]
    assert "&lt;sot&gt;" in first.header.text() and "S1" in first.header.text()
    qtbot.waitUntil(source.exhausted.is_set, timeout=60_000)
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # stop
    _wait_done(qtbot, window)

    transcript = window.workspace.transcript
    assert len(transcript.speakers) == 3  # the demo meeting's three voices
    assert all(not window.workspace.builder.is_open(t.turn_id) for t in transcript.turns)
    blocks = window.view.blocks.values()
    assert all(block.footer.isVisible() and "&lt;eot&gt;" in block.footer.text() for block in blocks)
    assert "launch" in " ".join(t.text for t in transcript.turns).lower()
    assert window.speaker_list.count() == 3
    assert window.meter.times and "encoder" in window.meter.stage_ms  # the meter plotted real samples
    session = window.workspace.session
    recorded, _ = sf.read(session.flac_path, dtype="float32")
    assert len(recorded) == len(audio)


@needs_shared_data
def test_open_file_then_rename_edit_search_and_export(qtbot, window: MainWindow, tmp_path: Path) -> None:
    assert window.open_file(JFK)
    assert window.workspace.busy and window.stop_action.isEnabled() and not window.open_action.isEnabled()
    _wait_done(qtbot, window)
    assert not window.cancel_button.isVisible()
    transcript = window.workspace.transcript
    assert "ask not what your country can do for you" in " ".join(t.text for t in transcript.turns).lower().replace(
        ",", ""
    )
    speaker = transcript.speakers[0]

    window.rename_speaker(speaker, "John F. Kennedy")
    assert all("John F. Kennedy" in block.header.text() for block in window.view.blocks.values())
    turn = transcript.sorted_turns()[0]
    window.edit_turn(turn.turn_id, "And so, my fellow Americans, ask not.")
    assert "ask not." in window.view.blocks[turn.turn_id].body.text()
    assert "(edited)" in window.view.blocks[turn.turn_id].header.text()

    window.search.setText("fellow")
    assert window.next_match() == turn.turn_id
    assert "background" in window.view.blocks[turn.turn_id].body.text()  # the match is highlighted

    for fmt in ("txt", "srt", "vtt", "json", "rttm", "seglst", "stm"):
        assert window.export(tmp_path / f"out.{fmt}", fmt) is not None
    assert "John F. Kennedy" in (tmp_path / "out.txt").read_text()
    assert "<v John F. Kennedy>" in (tmp_path / "out.vtt").read_text()
    assert json.loads((tmp_path / "out.json").read_text())["speaker_names"][speaker] == "John F. Kennedy"

    # the edits are in the session's journal: reopening shows them
    session_id = window.workspace.session.id
    window.open_session(session_id)
    reopened = window.workspace.transcript
    assert reopened.display_name(speaker) == "John F. Kennedy"
    assert reopened.turn(turn.turn_id).text == "And so, my fellow Americans, ask not."


def test_merging_speakers_applies_to_later_turns(qtbot, window: MainWindow, monkeypatch) -> None:
    window.start_recording(source=ReplaySource(np.zeros(16000, dtype=np.float32), speed=8.0))
    workspace = window.workspace
    job = workspace.job
    # engine events as a two-speaker stream would give them, through the real outbox
    job.outbox.put(
        [
            TurnStarted(1, 0, "S1", 0.0),
            WordsCommitted(1, 0, (Word("Hi.", 0.1, 0.4),), 0.5),
            TurnEnded(1, 0, "S1", 0.0, 0.5),
            TurnStarted(2, 0, "S2", 1.0),
            WordsCommitted(2, 0, (Word("Hello.", 1.1, 1.4),), 1.5),
            TurnEnded(2, 0, "S2", 1.0, 1.5),
        ]
    )
    window.poll()
    assert window.speaker_list.count() == 2
    window.speaker_list.setCurrentRow(1)  # S2
    monkeypatch.setattr(QInputDialog, "getItem", lambda *args, **kwargs: (args[3][0], True))
    window._ask_merge()
    assert workspace.transcript.speakers == ["S1"]
    job.outbox.put([TurnStarted(3, 0, "S2", 2.0), TurnEnded(3, 0, "S2", 2.0, 2.5)])
    window.poll()
    assert workspace.transcript.turn(3).speaker == "S1"  # the merge holds for new turns
    window.stop()
    _wait_done(qtbot, window)


def test_a_dropped_file_is_transcribed_and_can_be_cancelled(qtbot, window: MainWindow, tmp_path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    from transcriber.audio.decode import load_audio

    long_file = tmp_path / "long.flac"
    # 1.8 min: far from done when cancelled, and one stream (a file of 2 min or more is
    # read in pieces, and its audio copied whole at once: test_pieces.py cancels that)
    sf.write(long_file, np.tile(load_audio(DEMO), 2), 16000)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(long_file))])
    drop = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(drop)
    assert window.workspace.busy and window.workspace.session.info.title == "long.flac"
    qtbot.waitUntil(lambda: window.cancel_button.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: window.workspace.progress().recognized_seconds > 5, timeout=60_000)
    window.cancel_button.click()
    _wait_done(qtbot, window, timeout_s=60)
    assert "cancelled" in window.state_label.text()
    session = window.workspace.store.open(window.workspace.session.id)
    assert 5 < session.info.duration_seconds < 2 * 54  # the audio up to the cancel is kept


def test_the_view_follows_the_live_edge_unless_scrolled_back(qtbot, window: MainWindow) -> None:
    window.start_recording(source=ReplaySource(np.zeros(16000, dtype=np.float32), speed=8.0))
    outbox = window.workspace.job.outbox

    def add_turns(first: int, count: int) -> None:
        events = []
        for turn_id in range(first, first + count):
            start = float(turn_id)
            events += [
                TurnStarted(turn_id, 0, "S1", start),
                WordsCommitted(turn_id, 0, (Word(f"turn{turn_id}", start, start + 0.5),), start + 0.6),
                TurnEnded(turn_id, 0, "S1", start, start + 0.6),
            ]
        outbox.put(events)
        window.poll()
        qtbot.wait(50)

    bar = window.view.verticalScrollBar()
    add_turns(1, 40)
    assert bar.maximum() > 0 and bar.value() == bar.maximum()  # at the live edge
    bar.setValue(0)  # the reader scrolls back
    add_turns(41, 5)
    assert bar.value() == 0
    window.view.scroll_to_live_edge()
    add_turns(46, 5)
    assert bar.value() == bar.maximum()
    window.stop()
    _wait_done(qtbot, window)


def test_an_unreadable_file_gives_a_message_and_the_app_goes_on(window: MainWindow, tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    assert not window.open_file(bad)
    assert window.problems and "notes.wav" in window.problems[-1]
    assert window.record_action.isEnabled()
    assert window.workspace.store.sessions() == []  # no empty session left behind


def test_interrupted_session_is_recovered_at_start(qtbot, window: MainWindow, monkeypatch) -> None:
    store = window.workspace.store
    session = store.create("Crashed meeting")
    session.info = SessionInfo(**{**vars(session.info), "pid": 2**22 + 12345})  # a process that is gone
    session.save_info()
    recorder = PcmRecorder(session.pcm_path)
    recorder.write(np.full(16000 * 2, 0.1, dtype=np.float32))
    recorder.close()
    journal = JournalWriter(session.journal_path)
    journal.write(TurnStarted(1, 0, "S1", 0.0))
    journal.write(WordsCommitted(1, 0, (Word("Before", 0.1, 0.5), Word("the", 0.5, 0.7)), 1.0))
    journal.close()

    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    window.offer_recovery()
    assert store.interrupted() == []
    assert window.workspace.session.id == session.id
    assert session.flac_path.is_file() and not session.pcm_path.exists()
    assert sf.info(session.flac_path).duration == pytest.approx(2.0)
    assert "Before the" in window.view.blocks[1].body.text()


def test_the_sessions_dialog_lists_and_opens_past_sessions(qtbot, window: MainWindow) -> None:
    from transcriber.gui.dialogs import SessionsDialog

    store = window.workspace.store
    for title in ("Monday standup", "Design review"):
        session = store.create(title)
        journal = JournalWriter(session.journal_path)
        journal.write(TurnStarted(1, 0, "S1", 0.0))
        journal.write(WordsCommitted(1, 0, (Word(title, 0.1, 0.9),), 1.0))
        journal.write(TurnEnded(1, 0, "S1", 0.0, 1.0))
        journal.close()
        session.complete()
    dialog = SessionsDialog(store, window)
    qtbot.addWidget(dialog)
    labels = [dialog.list.item(row).text() for row in range(dialog.list.count())]
    assert len(labels) == 2 and all(any(t in label for label in labels) for t in ("Monday standup", "Design review"))
    row = next(row for row, label in enumerate(labels) if "Monday standup" in label)
    dialog.list.setCurrentRow(row)
    dialog.accept()
    window.open_session(dialog.chosen)
    assert window.workspace.session.info.title == "Monday standup"
    assert "Monday standup" in window.view.blocks[1].body.text()


def test_settings_are_kept_between_runs(qtbot, tmp_path: Path, window: MainWindow, loaded_engine) -> None:
    index = window.device_box.findData(DEMO_INPUT)
    window.device_box.setCurrentIndex(index)
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert AppSettings.load(qsettings).input_device == DEMO_INPUT
    loader = EngineLoader(EngineSettings(), create=lambda **_: loaded_engine)
    again = MainWindow(Workspace(SessionStore(tmp_path / "sessions"), loader), AppSettings.load(qsettings), qsettings)
    qtbot.addWidget(again)
    assert again.device_box.currentData() == DEMO_INPUT


def test_the_app_starts_from_the_command_line(tmp_path: Path) -> None:
    """``python -m transcriber`` with no command opens the window and keeps running."""
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "TRANSCRIBER_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # QSettings: not the user's
        "PYTHONPATH": str(REPO),
    }
    app = subprocess.Popen([sys.executable, "-m", "transcriber"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            app.wait(timeout=8)  # still running: the window is up, the model loaded behind it
    finally:
        app.terminate()
        _, errors = app.communicate(timeout=30)
    assert "Traceback" not in errors, errors


def test_a_missing_input_device_gives_a_message_and_leaves_no_session(window: MainWindow) -> None:
    from transcriber.audio.capture import MicrophoneCapture

    window.start_recording(source=MicrophoneCapture("no such microphone"))  # the real capture path
    assert window.problems and window.problems[-1].startswith("Cannot record"), window.problems
    assert "no such microphone" in window.problems[-1]
    assert window.workspace.recording is None and window.workspace.store.sessions() == []
    assert window.record_action.isEnabled()


def test_the_budget_slider_switches_the_encoders_operating_point(qtbot, window: MainWindow, loaded_engine) -> None:

    meter = window.meter
    points = window.workspace.budget_points()
    assert len(points) >= 2, "trained operating points ship in models/arbitrators"
    assert meter.budget_slider.isEnabled() and meter.budget_slider.maximum() == len(points) - 1
    try:
        meter.budget_slider.setValue(meter.budget_slider.maximum())  # the cheapest point
        cheapest = loaded_engine.recognizer.arbitrators
        assert cheapest is not None and cheapest.point.flops_fraction == meter.budget_points[-1][0]
        assert meter.budget_points[-1][1] in meter.budget_label.text()
        meter.budget_slider.setValue(0)
        assert loaded_engine.recognizer.arbitrators is None  # the full encoder
    finally:
        loaded_engine.set_compute_budget(None)
    layers = ((1.0, 0.5), (0.75, 0.25))
    meter.add_sample(CostSample(0, 0.0, 1.0, {"encoder": 0.1}, {"encoder": 1e9}, encoder_layers_run=layers))
    assert meter.layers_run == layers


def test_the_meter_plots_a_file_in_pieces_in_audio_order(qtbot) -> None:
    from transcriber.gui.cost_meter import CostMeter

    meter = CostMeter()
    qtbot.addWidget(meter)

    def sample(start: float, end: float, encoder_seconds: float) -> CostSample:
        return CostSample(0, start, end, {"encoder": encoder_seconds}, {"encoder": 1e9})

    # piece 0 (0-3 s) as it runs, then piece 1 (3-6 s), then piece 0's end of stream
    for start, end, cost in [(0, 1, 0.1), (1, 2, 0.1), (2, 3, 0.1), (3, 4, 0.4), (4, 5, 0.4), (5, 6, 0.4)]:
        meter.add_sample(sample(start, end, cost))
    meter.add_sample(sample(2.5, 3.0, 0.1))
    assert meter.times == [1, 2, 3, 3, 4, 5, 6]
    # each point: the compute of the 5 samples up to it in audio time, per second of
    # the audio they cover (the late sample among piece 0's, not piece 1's)
    assert meter.stage_ms["encoder"][3] == pytest.approx(1000 * (0.1 * 3 + 0.1) / 3)
    assert meter.stage_ms["encoder"][-1] == pytest.approx(1000 * (0.1 + 0.1 + 0.4 * 3) / 4)
    assert meter.last_rtf == pytest.approx((0.1 * 3 + 0.1) / 3)  # the latest sample's point


def test_overlapping_turns_on_two_channels_show_both_voices(qtbot, window: MainWindow) -> None:
    from transcriber.gui.transcript_view import CHANNEL_INDENT

    window.start_recording(source=ReplaySource(np.zeros(16000, dtype=np.float32), speed=8.0))
    outbox = window.workspace.job.outbox
    first = [TurnStarted(1, 0, "S1", 0.0), WordsCommitted(1, 0, (Word("so", 0.2, 0.5),), 0.6)]
    outbox.put(first + [TurnEnded(1, 0, "S1", 0.0, 5.0)])
    window.poll()
    # the second voice arrives later, on channel 2, while the first was talking
    second = [TurnStarted(2, 1, "S2", 3.0), WordsCommitted(2, 1, (Word("wait", 3.1, 3.4),), 3.5)]
    outbox.put(second + [TurnEnded(2, 1, "S2", 3.0, 4.0)])
    # then the newcomer goes on alone, still on channel 2
    alone = [TurnStarted(3, 1, "S2", 6.0), WordsCommitted(3, 1, (Word("right", 6.1, 6.4),), 6.5)]
    outbox.put(alone + [TurnEnded(3, 1, "S2", 6.0, 7.0)])
    window.poll()
    window.stop()
    _wait_done(qtbot, window)
    blocks = window.view.blocks
    names = {speaker: window.workspace.transcript.display_name(speaker) for speaker in ("S1", "S2")}
    assert "ch 2" in blocks[2].header.text() and "ch 2" not in blocks[1].header.text()
    assert f"over {names['S1']}" in blocks[2].header.text()
    assert f"over {names['S2']}" in blocks[1].header.text()
    assert blocks[2].contentsMargins().left() == CHANNEL_INDENT
    assert blocks[1].contentsMargins().left() == 0
    assert "ch 2" in blocks[3].header.text() and "over" not in blocks[3].header.text()
    assert blocks[3].contentsMargins().left() == 0, "a turn over nobody is not set aside"


def test_the_separator_setting_is_kept_and_reaches_the_engine_settings(tmp_path: Path) -> None:
    qsettings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    AppSettings(separator=True).save(qsettings)
    loaded = AppSettings.load(qsettings)
    assert loaded.separator and loaded.engine_settings().separator
    assert not AppSettings.load(QSettings(str(tmp_path / "new.ini"), QSettings.Format.IniFormat)).separator
