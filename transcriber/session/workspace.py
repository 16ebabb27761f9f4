"""What the app does, without the widgets: one current session at a time.

The GUI calls these methods and renders what ``poll`` returns; it keeps no
transcript state of its own. Everything here is plain Python (no Qt), so the
same flows are tested without a display.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from transcriber.audio.capture import MicrophoneCapture
from transcriber.audio.decode import iter_blocks, probe
from transcriber.engine.engine import StreamingEngine
from transcriber.engine.events import Event
from transcriber.engine.separator import SeparatingEngine, SeparatorConfig, create_engine
from transcriber.engine.transducer import TransducerConfig
from transcriber.session.runner import AudioSource, FileTranscription, LiveRecording, Notice, Progress
from transcriber.session.store import MICROPHONE, Session, SessionStore
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.exporters import FORMATS, write_format
from transcriber.transcript.journal import (
    Edit,
    JournalWriter,
    SpeakerRenamed,
    SpeakersMerged,
    TurnTextEdited,
    apply,
)
from transcriber.transcript.model import Transcript
from transcriber.whisper.arbitrators import default_arbitrators, operating_points, read_point
from transcriber.whisper.loading import DEFAULT_MODEL


@dataclass(frozen=True)
class EngineSettings:
    model: str = DEFAULT_MODEL
    vad_aggressiveness: int = 2
    max_speakers: int = 8
    compute_budget: float | None = None  # None: the model's default operating point
    separator: bool = False  # two channels where voices overlap (engine/separator.py)


class EngineLoader:
    """Loads the model on a thread of its own as soon as the app starts, so that the
    window is ready to record at once; ``get`` waits for it."""

    def __init__(
        self, settings: EngineSettings, create: Callable[..., StreamingEngine | SeparatingEngine] = create_engine
    ):
        self.settings = settings
        self._create = create
        self._prototype: StreamingEngine | SeparatingEngine | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._budget_lock = threading.Lock()
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        try:
            separator = SeparatorConfig() if self.settings.separator else None
            engine = self._create(model=self.settings.model, separator=separator)
            with self._budget_lock:  # a budget chosen while the model loaded applies now
                if self.settings.compute_budget is not None:
                    engine.set_compute_budget(self.settings.compute_budget)
                self._prototype = engine
        except BaseException as error:  # noqa: BLE001 - reported to whoever asks for the engine
            self._error = error
        finally:
            self._done.set()

    def set_compute_budget(self, budget: float) -> None:
        """Switch the encoder's operating point now, or as soon as the model is loaded;
        running jobs switch too (their engines share the loaded model)."""
        with self._budget_lock:
            self.settings = replace(self.settings, compute_budget=budget)
            if self._prototype is not None:
                self._prototype.set_compute_budget(budget)

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error if self._done.is_set() else None

    def get(self, timeout: float | None = None) -> StreamingEngine | SeparatingEngine:
        self._done.wait(timeout)
        if self._error is not None:
            raise RuntimeError(f"the model {self.settings.model!r} could not be loaded: {self._error}")
        if self._prototype is None:
            raise TimeoutError("the model is still loading")
        return self._prototype

    def fresh_engine(self, for_files: bool = False) -> StreamingEngine | SeparatingEngine:
        """A new engine for one stream, sharing the loaded model."""
        prototype = self.get()
        changes: dict = {
            "vad_aggressiveness": self.settings.vad_aggressiveness,
            "max_speakers": self.settings.max_speakers,
        }
        if for_files:
            changes["transducer"] = TransducerConfig.for_files()
        return prototype.fresh(**changes)


def budget_points(model: str) -> list[tuple[float, str]]:
    """(fraction of encoder FLOPs, name) of every operating point the model offers,
    the full encoder first."""
    points = [read_point(path) for path in operating_points(model)]
    return [(1.0, "full encoder"), *((point.flops_fraction, point.name) for point in points)]


class Workspace:
    def __init__(self, store: SessionStore, loader: EngineLoader):
        self.store = store
        self.loader = loader
        self.session: Session | None = None
        self.builder = TranscriptBuilder()
        self.job: LiveRecording | FileTranscription | None = None
        self._edits: JournalWriter | None = None  # for a session that is no longer recording

    # -- state ----------------------------------------------------------------------------------
    @property
    def transcript(self) -> Transcript:
        return self.builder.transcript

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    @property
    def recording(self) -> LiveRecording | None:
        return self.job if isinstance(self.job, LiveRecording) and self.job.running else None

    def progress(self) -> Progress | None:
        return self.job.progress() if self.job is not None else None

    # -- sessions -------------------------------------------------------------------------------
    def start_recording(self, device: int | str | None = None, source: AudioSource | None = None) -> Session:
        """Record from ``device`` (or a given source: tests, the test input) into a new session."""
        self._close_current()
        session = self.store.create("Recording", source=MICROPHONE)
        job = LiveRecording(session, lambda: self.loader.fresh_engine(), source or MicrophoneCapture(device))
        self._begin(session, job)
        try:
            job.start()
        except Exception:  # e.g. CaptureError: no such device; nothing was recorded
            job.recorder.close()
            job.worker.journal.close()
            self.store.delete(session)
            self.job, self.session = None, None
            raise
        return session

    def open_file(self, path: Path | str) -> Session:
        """Transcribe a file into a new session; raises AudioDecodeError if it cannot be read."""
        info = probe(path)  # fails fast, with the reason, before a session exists
        blocks = iter_blocks(path, block_seconds=1.0)
        self._close_current()
        session = self.store.create(Path(path).name, source=str(path))
        engine = lambda: self.loader.fresh_engine(for_files=True)  # noqa: E731 - called on the engine thread
        job = FileTranscription(
            session,
            engine,
            blocks,
            info.duration_seconds,
            source=lambda seconds: iter_blocks(path, block_seconds=1.0, start_seconds=seconds),
        )
        self._begin(session, job)
        job.start()
        return session

    def open_session(self, session_id: str) -> Session:
        self._close_current()
        session = self.store.open(session_id)
        self.session = session
        self.builder = TranscriptBuilder(session.transcript())
        return session

    def _begin(self, session: Session, job: LiveRecording | FileTranscription) -> None:
        self.session = session
        self.job = job
        self.builder = TranscriptBuilder(Transcript(audio_path=str(session.flac_path)))

    def _close_current(self) -> None:
        if self.busy:
            raise RuntimeError("stop the current recording or transcription first")
        if self._edits is not None:
            self._edits.close()
            self._edits = None
        self.job = None

    def pause(self) -> None:
        if self.recording:
            self.recording.pause()

    def resume(self) -> None:
        if self.recording:
            self.recording.resume()

    def stop(self) -> None:
        """Stop recording (the transcript catches up on its own) or cancel a file."""
        if isinstance(self.job, LiveRecording):
            self.job.stop()
        elif isinstance(self.job, FileTranscription):
            self.job.cancel()

    def poll(self) -> list[Event | Notice]:
        """What happened since the last call: engine events (already applied to the
        transcript) and notices (problems, the end of the job)."""
        if self.job is None:
            return []
        items: list[Event | Notice] = []
        while not self.job.outbox.empty():
            item = self.job.outbox.get()
            if isinstance(item, list):
                for event in item:
                    self.builder.apply(event)
                items.extend(item)
            else:
                items.append(item)
        return items

    # -- edits ----------------------------------------------------------------------------------
    def set_compute_budget(self, budget: float) -> None:
        self.loader.set_compute_budget(budget)

    def budget_points(self) -> list[tuple[float, str]]:
        return budget_points(self.loader.settings.model)

    def current_budget(self) -> float:
        """The budget chosen, else the fraction of the model's default operating point."""
        chosen = self.loader.settings.compute_budget
        if chosen is not None:
            return chosen
        default = default_arbitrators(self.loader.settings.model)
        return 1.0 if default is None else default.point.flops_fraction

    def rename_speaker(self, speaker: str, name: str) -> None:
        self._edit(SpeakerRenamed(speaker, name.strip() or speaker))

    def merge_speakers(self, keep: str, absorb: str) -> None:
        self._edit(SpeakersMerged(keep, absorb))

    def edit_turn(self, turn_id: int, text: str) -> None:
        self._edit(TurnTextEdited(turn_id, text))

    def _edit(self, edit: Edit) -> None:
        if self.session is None:
            return
        apply(self.builder, edit)
        if self.job is not None and self.job.running:
            try:
                self.job.worker.journal.write(edit)  # the journal the engine thread writes to
                return
            except ValueError:  # it closed in the meantime
                pass
        if self._edits is None:
            self._edits = JournalWriter(self.session.journal_path, flush_seconds=0.0)
        self._edits.write(edit)

    # -- export ---------------------------------------------------------------------------------
    def export(self, path: Path | str, fmt: str | None = None) -> Path:
        """Write the transcript (speaker names applied) in ``fmt``, by default the
        format that the file name's extension names."""
        path = Path(path)
        write_format(self.transcript, fmt or format_for(path), path)
        return path

    def close(self) -> None:
        if self.job is not None and self.job.running:
            self.stop()
            self.job.wait(timeout=30)
        if self._edits is not None:
            self._edits.close()


def format_for(path: Path) -> str:
    name = path.name.lower()
    for fmt, (extension, _) in sorted(FORMATS.items(), key=lambda item: -len(item[1][0])):
        if name.endswith(extension):
            return fmt
    raise ValueError(f"unknown export format for {path.name}; use one of {', '.join(e for e, _ in FORMATS.values())}")
