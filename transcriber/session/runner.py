"""Recording and transcribing a session on background threads (no Qt).

Live recording uses two threads, so that recognition can never hold up the
audio:

    capture callback --queue--> recorder thread --queue--> engine thread --> outbox
                                 (writes audio.pcm,          (engine.feed, journal)
                                  flushed every second)

The recorder thread writes every captured block to disk before it hands it to
the engine; the engine's queue is unbounded, so when recognition is slower than
real time the recording goes on and the backlog grows, and the transcript
catches up after stop. A file goes through the same engine thread, fed from the
decoder as fast as the CPU allows (its audio is copied into the session too); a
file long enough to be cut into pieces (engine/pieces.py) is read by the pieces
themselves, and the decoder only copies it.

What the threads produce goes to ``outbox``: lists of engine events, and the
notices below. A GUI polls it; tests read it directly.
"""

from __future__ import annotations

import errno
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from transcriber.audio.recorder import SAMPLE_RATE, PcmRecorder, RecordingError
from transcriber.engine.engine import StreamingEngine
from transcriber.engine.events import Event
from transcriber.engine.pieces import BlockSource, pieces_for, transcribe_in_pieces
from transcriber.engine.speaker_pass import last_pass
from transcriber.session.store import Session
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.journal import JournalWriter

# a device that delivers nothing for this long while recording is treated as gone
DEVICE_TIMEOUT_SECONDS = 3.0


class Engine(Protocol):
    time: float

    def feed(self, samples: np.ndarray) -> list[Event]: ...

    def finish(self) -> list[Event]: ...


class AudioSource(Protocol):
    overflows: int
    stream_error: str | None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, timeout: float = 0.1) -> np.ndarray | None: ...

    def drain(self) -> list[np.ndarray]: ...

    def silent_for(self) -> float: ...


@dataclass(frozen=True)
class Problem:
    """Something went wrong; ``fatal`` problems ended the recording (audio so far is kept)."""

    message: str
    fatal: bool = True


@dataclass(frozen=True)
class Finished:
    """The session is complete: audio closed, transcript final."""

    session_id: str
    cancelled: bool = False


Notice = Problem | Finished
Outbox = queue.SimpleQueue  # of list[Event] | Notice


@dataclass(frozen=True)
class Progress:
    recorded_seconds: float  # audio on disk (live) or decoded (file)
    recognized_seconds: float  # audio the engine has been given
    total_seconds: float | None  # a file's length; None live
    level_dbfs: float  # loudness of the latest block
    overflows: int  # blocks the sound card dropped before we read them

    @property
    def backlog_seconds(self) -> float:
        return max(0.0, self.recorded_seconds - self.recognized_seconds)


class _EngineThread:
    """Feeds queued blocks to the engine; journals and posts its events."""

    def __init__(self, engine: Engine | Callable[[], Engine], session: Session, outbox: Outbox):
        # a callable is called on the engine thread: the recording can start while the
        # model is still loading, and the first blocks wait in the queue
        self._engine = engine
        self.session = session
        self.outbox = outbox
        self.blocks: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self.journal = JournalWriter(session.journal_path)
        self.heard = TranscriptBuilder()  # what the engine said, for a file's last pass
        self.recognized_samples = 0
        self.cancelled = threading.Event()
        self.on_done: Callable[[], None] = lambda: None
        # a file the engine may cut into pieces, each read from its own place
        self.source: BlockSource | None = None
        self.total_seconds: float | None = None
        # set once the engine is loaded: whether it takes its audio from ``blocks``
        # (else the pieces read ``source``, and ``blocks`` only ends with None)
        self.takes_blocks = True
        self.knows_its_input = threading.Event()
        self.thread = threading.Thread(target=self._run, name="engine", daemon=True)

    def _post(self, events: list[Event]) -> None:
        if not events:
            return
        for event in events:
            self.journal.write(event)
        if self.source is not None:  # only a file gets the last pass
            self.heard.apply_all(events)
        self.outbox.put(events)

    def _run(self) -> None:
        failed = False
        try:
            if callable(self._engine) and not hasattr(self._engine, "feed"):
                failed = not self._recognize(lambda _: self._load_engine(), None)
            pieces = 1 if failed else self._pieces()
            self.takes_blocks = pieces == 1
            self.knows_its_input.set()
            if pieces > 1:
                failed = not self._recognize(lambda _: self._run_pieces(pieces), None)
            # the queue is drained to its end (None) even after a failure or a cancel:
            # the session closes only once the audio side has closed its file
            while (block := self.blocks.get()) is not None:
                if not (failed or self.cancelled.is_set()):
                    failed = not self._recognize(self.engine.feed, block)
                self.recognized_samples += len(block)
            if self.takes_blocks and not (failed or self.cancelled.is_set()):
                failed = not self._recognize(lambda _: self.engine.finish(), None)
            source = self.source
            if source is not None and not (failed or self.cancelled.is_set()):
                # a file's last pass, as transcribe_file runs it
                transcript = self.heard.transcript
                self._recognize(lambda _: last_pass(self.engine, transcript, source(0.0), self.cancelled), None)
        finally:
            self.knows_its_input.set()
            try:
                self.journal.close()
            except OSError as error:  # a full disk: the journal keeps what was flushed
                self.outbox.put(Problem(f"cannot write the transcript journal: {error}", fatal=False))
            self.on_done()

    def _load_engine(self) -> list[Event]:
        self._engine = self._engine()
        return []

    def _pieces(self) -> int:
        return 1 if self.source is None else pieces_for(self.engine, self.total_seconds)

    def _run_pieces(self, pieces: int) -> list[Event]:
        """The file in pieces at once; their events are posted as they come."""
        assert self.source is not None and self.total_seconds is not None and isinstance(self.engine, StreamingEngine)

        def recognized(seconds: float) -> None:
            self.recognized_samples = int(seconds * SAMPLE_RATE)

        transcribe_in_pieces(
            self.engine, self.source, pieces, self.total_seconds, self._post, recognized, self.cancelled
        )
        return []

    @property
    def engine(self) -> Engine:
        return self._engine

    def _recognize(self, step: Callable[[np.ndarray | None], list[Event]], block: np.ndarray | None) -> bool:
        try:
            self._post(step(block))
        except Exception as error:  # noqa: BLE001 - whatever breaks, the recording goes on
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                # the journal found the disk full before the recorder did (either may be first)
                message = "the disk is full: the transcript is no longer saved; the audio up to now is kept"
            else:
                message = f"recognition failed ({error}); the recording goes on and is kept"
            self.outbox.put(Problem(message, fatal=False))
            return False
        return True


class _Job:
    """What a recording and a file transcription share: the session, its audio file,
    the engine thread, the thread that feeds both (``_feed``), and the outbox."""

    total_seconds: float | None = None

    def __init__(self, session: Session, engine: Engine | Callable[[], Engine], outbox: Outbox | None, name: str):
        self.session = session
        self.outbox: Outbox = outbox if outbox is not None else queue.SimpleQueue()
        self.recorder = PcmRecorder(session.pcm_path)
        self.worker = _EngineThread(engine, session, self.outbox)
        self.worker.on_done = self._close_session
        self._thread = threading.Thread(target=self._feed, name=name, daemon=True)

    def _feed(self) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the session is complete; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._thread, self.worker.thread):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not (self._thread.is_alive() or self.worker.thread.is_alive())

    def wait_audio(self, timeout: float | None = None) -> bool:
        """Wait until the audio file is closed (recognition may still go on)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self.worker.thread.is_alive()

    def progress(self) -> Progress:
        return Progress(
            recorded_seconds=self.recorder.samples_written / SAMPLE_RATE,
            recognized_seconds=self.worker.recognized_samples / SAMPLE_RATE,
            total_seconds=self.total_seconds,
            level_dbfs=self._level_dbfs(),
            overflows=self._overflows(),
        )

    def _level_dbfs(self) -> float:
        return -math.inf

    def _overflows(self) -> int:
        return 0

    def _close_recorder(self) -> None:
        """Close the audio file, whatever happened; then tell the engine thread the audio is over."""
        try:
            self.recorder.close()
        except RecordingError as error:
            self.outbox.put(Problem(str(error)))
        finally:
            self.session.info.duration_seconds = self.recorder.seconds
            self.worker.blocks.put(None)

    def _close_session(self) -> None:
        """Audio to FLAC and the session marked complete. A failure (a full disk) leaves
        the raw audio and the journal as they are, and says so."""
        try:
            self.session.close_recording()
            self.session.complete()
            self.outbox.put(Finished(self.session.id, cancelled=self.worker.cancelled.is_set()))
        except (OSError, RecordingError) as error:
            self.outbox.put(Problem(f"cannot finish the session in {self.session.folder}: {error}"))


class LiveRecording(_Job):
    """Records ``source`` into ``session`` and transcribes it as it comes."""

    def __init__(
        self,
        session: Session,
        engine: Engine | Callable[[], Engine],
        source: AudioSource,
        outbox: Outbox | None = None,
    ):
        super().__init__(session, engine, outbox, name="recorder")
        self.source = source
        self.level_dbfs = -math.inf
        self.paused = False
        self._stop = threading.Event()

    def start(self) -> None:
        self.source.start()
        self.worker.thread.start()
        self._thread.start()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.source.stop()

    def resume(self) -> None:
        if self.paused:
            self.source.start()
            self.paused = False

    def stop(self) -> None:
        """Stop capturing; recognition finishes the backlog on its own thread."""
        self._stop.set()

    def _level_dbfs(self) -> float:
        return self.level_dbfs

    def _overflows(self) -> int:
        return self.source.overflows

    def _feed(self) -> None:
        try:
            while not self._stop.is_set():
                block = self.source.read(timeout=0.1)
                if block is not None:
                    self._keep(block)
                elif not self.paused and (
                    self.source.stream_error or self.source.silent_for() > DEVICE_TIMEOUT_SECONDS
                ):
                    reason = self.source.stream_error or "the microphone stopped delivering audio"
                    self.outbox.put(Problem(f"{reason}: recording stopped; the audio so far is kept"))
                    break
            self.source.stop()
            for block in self.source.drain():
                self._keep(block)
        except RecordingError as error:
            self.outbox.put(Problem(str(error)))
            self.source.stop()
        finally:
            self._close_recorder()

    def _keep(self, block: np.ndarray) -> None:
        if len(block) == 0:
            return
        self.recorder.write(block)  # to disk first: recognition may lag, the audio is safe
        self.worker.blocks.put(block)
        self.level_dbfs = 10.0 * math.log10(float(np.mean(block.astype(np.float64) ** 2)) + 1e-12)


class FileTranscription(_Job):
    """Transcribes a decoded file into ``session`` (its audio is copied there too).
    ``source`` (the file's blocks from a time on) lets a long file be recognised in
    pieces, each read from its own place."""

    def __init__(
        self,
        session: Session,
        engine: Engine | Callable[[], Engine],
        blocks: Iterable[np.ndarray],
        total_seconds: float | None,
        outbox: Outbox | None = None,
        source: BlockSource | None = None,
    ):
        super().__init__(session, engine, outbox, name="decoder")
        self.blocks = blocks
        self.total_seconds = total_seconds
        self.worker.source, self.worker.total_seconds = source, total_seconds

    def start(self) -> None:
        self.worker.thread.start()
        self._thread.start()

    def cancel(self) -> None:
        self.worker.cancelled.set()

    def _feed(self) -> None:
        try:
            for block in self.blocks:
                if self.worker.cancelled.is_set():
                    break
                self.recorder.write(block)
                if not self._engine_takes_blocks():
                    continue
                self.worker.blocks.put(block)
                # decoding is much faster than recognition: stay a few seconds ahead,
                # not the whole file (memory stays flat for long files)
                while (
                    self.recorder.samples_written - self.worker.recognized_samples > 10 * SAMPLE_RATE
                    and not self.worker.cancelled.is_set()
                ):
                    time.sleep(0.02)
        except Exception as error:  # noqa: BLE001 - AudioDecodeError and anything a codec raises
            self.outbox.put(Problem(str(error)))
        finally:
            self._close_recorder()

    def _engine_takes_blocks(self) -> bool:
        """Whether the engine reads the decoded blocks (else its pieces read the file);
        known once it is loaded."""
        while not self.worker.knows_its_input.wait(0.1):
            if self.worker.cancelled.is_set():
                return False
        return self.worker.takes_blocks
