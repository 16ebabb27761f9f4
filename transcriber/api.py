"""The Python API: a streaming engine for live audio, a function for files.

from transcriber.api import transcribe_file
transcript = transcribe_file("meeting.m4a")
for turn in transcript.sorted_turns():
    print(transcript.display_name(turn.speaker), turn.text)
"""

from __future__ import annotations

import os
from collections.abc import Callable

from transcriber.audio.decode import AudioDecodeError, iter_blocks, probe
from transcriber.engine.engine import EngineConfig, StreamingEngine
from transcriber.engine.events import Event
from transcriber.engine.pieces import pieces_for, transcribe_in_pieces
from transcriber.engine.separator import SeparatingEngine, SeparatorConfig, create_engine
from transcriber.engine.speaker_pass import last_pass
from transcriber.engine.transducer import TransducerConfig
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.model import Transcript
from transcriber.whisper.loading import DEFAULT_MODEL

__all__ = [
    "AudioDecodeError",
    "EngineConfig",
    "SeparatingEngine",
    "SeparatorConfig",
    "StreamingEngine",
    "TransducerConfig",
    "Transcript",
    "file_engine",
    "transcribe_file",
]

ProgressCallback = Callable[[float, float | None], None]  # (seconds done, total seconds or None)


def file_engine(
    model: str = DEFAULT_MODEL,
    speakers: int | None = None,
    compute_budget: float | None = None,
    separator: SeparatorConfig | None = None,
) -> StreamingEngine | SeparatingEngine:
    """An engine set up for files (``TransducerConfig.for_files()``); ``fresh()`` gives
    one per file that shares its loaded models. ``compute_budget``: see
    ``StreamingEngine.set_compute_budget``; ``separator``: two channels where voices
    overlap (engine/separator.py), off when None."""
    return create_engine(
        separator,
        model=model,
        speakers=speakers,
        compute_budget=compute_budget,
        transducer=TransducerConfig.for_files(),
    )


def transcribe_file(
    path: str | os.PathLike[str],
    model: str = DEFAULT_MODEL,
    speakers: int | None = None,
    engine: StreamingEngine | SeparatingEngine | None = None,
    progress: ProgressCallback | None = None,
    on_event: Callable[[Event], None] | None = None,
    block_seconds: float = 1.0,
) -> Transcript:
    """Transcribe one file through the streaming engine, as fast as the CPU allows: a
    file long enough is cut in pauses into one piece per thread of the engine, which
    are recognised at once (engine/pieces.py).

    Pass ``engine`` to reuse loaded models across files (it must be fresh: one
    engine per stream; see ``file_engine``); otherwise one is created by
    ``file_engine(model, speakers)``.
    Raises AudioDecodeError for unreadable, empty or non-audio files.
    """
    info = probe(path)
    if engine is None:
        engine = file_engine(model, speakers)
    builder = TranscriptBuilder(Transcript(audio_path=str(path)))

    def handle(events: list[Event]) -> None:
        for event in events:
            builder.apply(event)
            if on_event is not None:
                on_event(event)

    pieces = pieces_for(engine, info.duration_seconds)
    if pieces > 1 and isinstance(engine, StreamingEngine) and info.duration_seconds is not None:
        total = info.duration_seconds
        end = transcribe_in_pieces(
            engine,
            lambda seconds: iter_blocks(path, block_seconds=block_seconds, start_seconds=seconds),
            pieces,
            total,
            handle,
            None if progress is None else lambda done: progress(done, total),
        )
        assert end is not None  # only a cancel gives None
    else:
        for block in iter_blocks(path, block_seconds=block_seconds):
            handle(engine.feed(block))
            if progress is not None:
                progress(engine.time, info.duration_seconds)
        handle(engine.finish())
        end = engine.time
    handle(last_pass(engine, builder.transcript, iter_blocks(path, block_seconds=block_seconds)))
    transcript = builder.transcript
    transcript.duration = max(transcript.duration, end)
    return transcript
