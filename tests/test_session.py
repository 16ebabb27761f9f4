"""Sessions: recording to disk, the transcript journal, recovery after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO, SHARED_DATA, needs_shared_data, outbox_items
from transcriber.audio.recorder import PcmRecorder, RecordingError, pcm_to_flac, read_pcm
from transcriber.audio.replay import ReplaySource
from transcriber.engine.events import (
    CostSample,
    SpeakerRelabelled,
    TurnBoundaryMoved,
    TurnEnded,
    TurnRevised,
    TurnSplit,
    TurnStarted,
    WordsCommitted,
)
from transcriber.session.runner import FileTranscription, Finished, LiveRecording, Problem
from transcriber.session.store import COMPLETE, RECORDING, SessionStore
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.journal import (
    JournalWriter,
    SpeakerRenamed,
    SpeakersMerged,
    TurnTextEdited,
    apply,
    read_journal,
    replay,
)
from transcriber.transcript.model import Word

JFK = SHARED_DATA / "utterances/jfk_whisper/jfk.flac"
SAMPLE_RATE = 16000


def _int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).round().astype(np.int16)


# --- journal -----------------------------------------------------------------------------


def test_journal_replays_events_and_edits(tmp_path: Path) -> None:
    items = [
        TurnStarted(1, 0, "S1", 0.5),
        WordsCommitted(1, 0, (Word("Hello", 0.6, 0.9, 0.8), Word("there.", 1.0, 1.3)), 1.5),
        TurnEnded(1, 0, "S1", 0.5, 1.4),
        TurnStarted(2, 0, "S2", 2.0),
        WordsCommitted(2, 0, (Word("Yes.", 2.1, 2.4), Word("No.", 3.1, 3.4)), 3.5),
        TurnEnded(2, 0, "S2", 2.0, 3.5),
        TurnRevised(1, 0, (Word("Hello", 0.6, 0.9), Word("there!", 1.0, 1.3)), 4.0),
        TurnSplit(2, 0, 1, 2.8, 3, "S3"),
        TurnBoundaryMoved(1, 2, 0, 1.7, 1),
        SpeakerRelabelled(3, 0, "S3", "S1"),
        CostSample(0, 0.0, 4.0, {"encoder": 0.1}, {"encoder": 1e9}, 0.0, 1.0),
        SpeakerRenamed("S1", "Ada"),
        SpeakersMerged(keep="S1", absorb="S2"),
        TurnTextEdited(3, "No!"),
        TurnStarted(4, 0, "S2", 5.0),  # the engine still says S2: the merge holds
    ]
    writer = JournalWriter(tmp_path / "journal.jsonl")
    for item in items:
        writer.write(item)
    writer.close()
    assert list(read_journal(tmp_path / "journal.jsonl")) == items

    expected = TranscriptBuilder()
    for item in items:
        apply(expected, item)
    transcript = replay(tmp_path / "journal.jsonl")
    assert transcript.to_dict() == expected.transcript.to_dict()
    assert [(t.turn_id, t.speaker, t.text) for t in transcript.sorted_turns()] == [
        (1, "S1", "Hello"),
        (2, "S1", "there! Yes."),
        (3, "S1", "No!"),
        (4, "S1", ""),
    ]
    assert transcript.display_name("S1") == "Ada"


def test_journal_skips_a_line_cut_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    writer = JournalWriter(path)
    writer.write(TurnStarted(1, 0, "S1", 0.5))
    writer.close()
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"type":"TurnEnded","turn_id":1,"chan')
    assert [type(item).__name__ for item in read_journal(path)] == ["TurnStarted"]


# --- recorder ----------------------------------------------------------------------------


def test_recorder_keeps_every_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal(SAMPLE_RATE * 3)).astype(np.float32)
    recorder = PcmRecorder(tmp_path / "audio.pcm")
    for start in range(0, len(audio), 737):  # odd block sizes, as a sound card delivers them
        recorder.write(audio[start : start + 737])
    recorder.close()
    assert recorder.samples_written == len(audio)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "audio.pcm", dtype="<i2"), _int16(audio))
    np.testing.assert_allclose(read_pcm(tmp_path / "audio.pcm"), audio, atol=1 / 16000)
    seconds = pcm_to_flac(tmp_path / "audio.pcm", tmp_path / "audio.flac", block_seconds=1.0)
    assert seconds == pytest.approx(3.0)
    flac, rate = sf.read(tmp_path / "audio.flac", dtype="int16")
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(flac, _int16(audio))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_full_disk_gives_a_clear_error() -> None:
    recorder = PcmRecorder("/dev/full", flush_seconds=0.0)
    with pytest.raises(RecordingError, match="disk is full"):
        recorder.write(np.zeros(SAMPLE_RATE, dtype=np.float32))


# --- live recording ----------------------------------------------------------------------


class _SlowEngine:
    """The real engine, made slower than the audio arrives (recognition falling behind)."""

    def __init__(self, engine, seconds_per_second: float):
        self.engine = engine
        self.seconds_per_second = seconds_per_second

    @property
    def time(self) -> float:
        return self.engine.time

    def feed(self, samples):
        time.sleep(len(samples) / SAMPLE_RATE * self.seconds_per_second)
        return self.engine.feed(samples)

    def finish(self):
        return self.engine.finish()


@needs_shared_data
def test_live_recording_keeps_all_audio_while_recognition_lags(engine_factory, tmp_path: Path) -> None:
    audio, _ = sf.read(JFK, dtype="float32")
    store = SessionStore(tmp_path)
    session = store.create("JFK")
    source = ReplaySource(audio, speed=8.0)  # 11 s in 1.4 s; the engine needs longer
    recording = LiveRecording(session, _SlowEngine(engine_factory(), 0.25), source)
    recording.start()
    assert source.exhausted.wait(10)
    backlog = recording.progress().backlog_seconds
    recording.stop()
    assert recording.wait(120)
    assert backlog > 1.0, "recognition was meant to fall behind"

    items = outbox_items(recording.outbox)
    assert not [item for item in items if isinstance(item, Problem)]
    assert isinstance(items[-1], Finished) and items[-1].session_id == session.id

    reopened = store.open(session.id)
    assert reopened.info.state == COMPLETE
    assert not reopened.pcm_path.exists()
    recorded, _ = sf.read(reopened.flac_path, dtype="int16")
    np.testing.assert_array_equal(recorded, _int16(audio))  # not one sample lost or changed
    text = " ".join(turn.text for turn in reopened.transcript().sorted_turns()).lower()
    assert "ask not what your country can do for you" in text.replace(",", "")


class _VanishingSource(ReplaySource):
    """A microphone that is unplugged after ``seconds``: no more blocks, no error."""

    def __init__(self, audio: np.ndarray, seconds: float):
        super().__init__(audio[: int(seconds * SAMPLE_RATE)], speed=4.0)

    def silent_for(self) -> float:
        return time.monotonic() - self._last_block


@needs_shared_data
def test_a_vanished_microphone_stops_the_recording_and_keeps_the_audio(engine_factory, tmp_path: Path) -> None:
    audio, _ = sf.read(JFK, dtype="float32")
    store = SessionStore(tmp_path)
    session = store.create("unplugged")
    recording = LiveRecording(session, engine_factory(), _VanishingSource(audio, seconds=4.0))
    recording.start()
    assert recording.wait(60), "the recording must end by itself"
    items = outbox_items(recording.outbox)
    problems = [item for item in items if isinstance(item, Problem)]
    assert problems and "microphone" in problems[0].message and "kept" in problems[0].message
    assert isinstance(items[-1], Finished)
    recorded, _ = sf.read(store.open(session.id).flac_path, dtype="int16")
    np.testing.assert_array_equal(recorded, _int16(audio[: 4 * SAMPLE_RATE]))


@needs_shared_data
def test_file_transcription_copies_the_audio_into_the_session(engine_factory, tmp_path: Path) -> None:
    from transcriber.audio.decode import iter_blocks, probe

    store = SessionStore(tmp_path)
    session = store.create("jfk.flac", source=str(JFK))
    job = FileTranscription(session, engine_factory(), iter_blocks(JFK), probe(JFK).duration_seconds)
    job.start()
    assert job.wait(120)
    assert isinstance(outbox_items(job.outbox)[-1], Finished)
    reopened = store.open(session.id)
    assert reopened.info.duration_seconds == pytest.approx(11.0, abs=0.1)
    assert "ask not" in " ".join(t.text for t in reopened.transcript().turns).lower()


# --- crash recovery ------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, time
    import soundfile as sf
    from transcriber.audio.replay import ReplaySource
    from transcriber.engine.engine import StreamingEngine
    from transcriber.session.runner import LiveRecording
    from transcriber.session.store import SessionStore

    audio, _ = sf.read(sys.argv[2], dtype="float32")
    engine = StreamingEngine.create(threads=1)
    session = SessionStore(sys.argv[1]).create("crash test")
    recording = LiveRecording(session, engine, ReplaySource(audio, speed=1.0))
    recording.start()
    while True:
        print(f"{recording.progress().recorded_seconds:.3f}", flush=True)
        time.sleep(0.1)
    """
)


@needs_shared_data
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_during_recording_loses_at_most_a_second(tmp_path: Path) -> None:
    audio, _ = sf.read(JFK, dtype="float32")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), str(JFK)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    recorded = 0.0
    deadline = time.monotonic() + 120
    while recorded < 6.0 and time.monotonic() < deadline:
        recorded = float(child.stdout.readline() or 0.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert recorded >= 6.0, "the child never recorded"

    store = SessionStore(tmp_path)
    [session] = store.interrupted()
    assert session.info.state == RECORDING
    session.recover()
    assert not store.interrupted()
    recovered, _ = sf.read(session.flac_path, dtype="int16")
    # killed 0-0.1 s after it reported ``recorded`` seconds on disk or in flight
    assert len(recovered) / SAMPLE_RATE >= recorded - 1.0
    np.testing.assert_array_equal(recovered, _int16(audio[: len(recovered)]))
    transcript = session.transcript()  # the journal up to its last flush
    assert any(turn.words for turn in transcript.turns)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KiB file system (8 s of 16 kHz audio): a disk that fills up while recording."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)  # lazy: no "busy" if a file is open


@needs_shared_data
def test_a_full_disk_stops_the_recording_with_a_message_and_keeps_the_audio(engine_factory, small_disk: Path) -> None:
    audio, _ = sf.read(JFK, dtype="float32")
    session = SessionStore(small_disk / "sessions").create("full disk")
    recording = LiveRecording(session, engine_factory(), ReplaySource(np.concatenate([audio, audio]), speed=8.0))
    recording.start()
    assert recording.wait(120), "the recording must end by itself"
    messages = [item.message for item in outbox_items(recording.outbox) if isinstance(item, Problem)]
    assert messages and "disk is full" in messages[0] and "kept" in messages[0], messages
    # what reached the disk is a valid recording: exactly the first samples, nothing garbled
    if session.pcm_path.exists():  # no room to convert it to FLAC
        kept = np.fromfile(session.pcm_path, dtype="<i2")
    else:
        kept, _ = sf.read(session.flac_path, dtype="int16")
    assert len(kept) > 4 * SAMPLE_RATE
    np.testing.assert_array_equal(kept, _int16(np.concatenate([audio, audio]))[: len(kept)])
