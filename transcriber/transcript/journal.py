"""A session's transcript as an append-only journal (JSON lines).

Every engine event and every edit a person makes is one line, in the order they
happened. Replaying the lines through a :class:`TranscriptBuilder` rebuilds the
transcript exactly, so the journal is the only copy that has to be safe: it is
appended to as the transcript grows and flushed to disk at least every second,
and a line cut short by a crash is skipped when it is read back.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transcriber.engine import events as engine_events
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.model import Transcript, Word


@dataclass(frozen=True)
class SpeakerRenamed:
    speaker: str
    name: str


@dataclass(frozen=True)
class SpeakersMerged:
    """Every turn of ``absorb``, now and later, belongs to ``keep``."""

    keep: str
    absorb: str


@dataclass(frozen=True)
class TurnTextEdited:
    turn_id: int
    text: str


Edit = SpeakerRenamed | SpeakersMerged | TurnTextEdited

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        engine_events.TurnStarted,
        engine_events.PartialText,
        engine_events.WordsCommitted,
        engine_events.TurnRevised,
        engine_events.TurnEnded,
        engine_events.TurnDiscarded,
        engine_events.SpeakerRelabelled,
        engine_events.TurnSplit,
        engine_events.TurnBoundaryMoved,
        engine_events.CostSample,
    )
}
_EDIT_TYPES: dict[str, type] = {cls.__name__: cls for cls in (SpeakerRenamed, SpeakersMerged, TurnTextEdited)}


def to_record(item: engine_events.Event | Edit) -> dict[str, Any]:
    return {"type": type(item).__name__, **asdict(item)}


def from_record(record: dict[str, Any]) -> engine_events.Event | Edit:
    fields = {key: value for key, value in record.items() if key != "type"}
    kind = record.get("type")
    if kind in _EDIT_TYPES:
        return _EDIT_TYPES[kind](**fields)
    if kind not in _EVENT_TYPES:
        raise ValueError(f"unknown journal record type {kind!r}")
    if "words" in fields:
        fields["words"] = tuple(Word.from_dict(word) for word in fields["words"])
    if "encoder_sub_blocks" in fields:
        fields["encoder_sub_blocks"] = tuple(fields["encoder_sub_blocks"])
    if "encoder_layers_run" in fields:
        fields["encoder_layers_run"] = tuple(tuple(layer) for layer in fields["encoder_layers_run"])
    return _EVENT_TYPES[kind](**fields)


def apply(builder: TranscriptBuilder, item: engine_events.Event | Edit) -> None:
    """An engine event goes to the builder; an edit changes the transcript."""
    transcript = builder.transcript
    match item:
        case SpeakerRenamed():
            transcript.rename_speaker(item.speaker, item.name)
        case SpeakersMerged():
            transcript.merge_speakers(item.keep, item.absorb)
        case TurnTextEdited():
            transcript.turn(item.turn_id).edited_text = item.text
        case _:
            builder.apply(item)


class JournalWriter:
    """Appends records to a journal file; flushes (and fsyncs) at least every
    ``flush_seconds``, so a crash loses at most that much of the transcript. The
    engine thread and the user's edits may write at the same time: writes are locked."""

    def __init__(self, path: Path | str, flush_seconds: float = 1.0):
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open while recording
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()

    def write(self, item: engine_events.Event | Edit) -> None:
        line = json.dumps(to_record(item), separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            if time.monotonic() - self._flushed_at >= self.flush_seconds:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._flush()
                self._file.close()


def read_journal(path: Path | str) -> Iterator[engine_events.Event | Edit]:
    """The records of a journal in order; a last line cut short by a crash is skipped."""
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.endswith("\n"):
                return  # the write that a crash interrupted
            if line.strip():
                yield from_record(json.loads(line))


def replay(path: Path | str, transcript: Transcript | None = None) -> Transcript:
    builder = TranscriptBuilder(transcript)
    for item in read_journal(path):
        apply(builder, item)
    return builder.transcript
