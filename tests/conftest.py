"""Shared fixtures: the real model, loaded once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "utterances.jsonl").is_file(),
    reason=f"real speech not found at {SHARED_DATA} (the ../shared folder beside the checkout)",
)


@pytest.fixture(scope="session")
def engine_factory():
    """A function returning a fresh StreamingEngine that shares one loaded tiny.en model."""
    from transcriber.engine.engine import StreamingEngine

    prototype = StreamingEngine.create()

    def fresh(**config_changes):
        # through fresh(), not setattr on a built engine: parts built from the config
        # (the VAD, the second pass) must see the changes too
        return prototype.fresh(**config_changes)

    return fresh
