"""Shared fixtures: the real model, loaded once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt widgets are tested without a display (the Xvfb screenshot test sets its own platform)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "utterances.jsonl").is_file(),
    reason=f"real speech not found at {SHARED_DATA} (the ../shared folder beside the checkout)",
)


@pytest.fixture(scope="session")
def loaded_engine():
    """The default model (tiny.en), loaded once for the whole test session."""
    from transcriber.engine.engine import StreamingEngine

    return StreamingEngine.create()


@pytest.fixture(scope="session")
def engine_factory(loaded_engine):
    """A function returning a fresh StreamingEngine that shares one loaded tiny.en model."""
    prototype = loaded_engine

    def fresh(**config_changes):
        # through fresh(), not setattr on a built engine: parts built from the config
        # (the VAD, the second pass) must see the changes too
        return prototype.fresh(**config_changes)

    return fresh


def run_engine(engine, audio, block_seconds: float = 1.0) -> list:
    """Feed ``audio`` to a fresh engine in blocks, then finish it: all its events, in order."""
    events = []
    block = int(block_seconds * 16000)
    for start in range(0, len(audio), block):
        events += engine.feed(audio[start : start + block])
    return events + engine.finish()


def run_file_engine(engine, audio, block_seconds: float = 1.0) -> list:
    """``run_engine``, then the last pass a file gets (``transcribe_file`` runs both)."""
    from transcriber.engine.speaker_pass import last_pass

    events = run_engine(engine, audio, block_seconds)
    block = int(block_seconds * 16000)
    blocks = (audio[start : start + block] for start in range(0, len(audio), block))
    return events + last_pass(engine, transcript_of(events), blocks)


def transcript_of(events):
    from transcriber.transcript.builder import TranscriptBuilder

    builder = TranscriptBuilder()
    builder.apply_all(events)
    return builder.transcript


def outbox_items(outbox) -> list:
    """Everything a job has posted so far: lists of events and notices, in order."""
    items = []
    while not outbox.empty():
        items.append(outbox.get())
    return items
