"""Voice activity edges on real speech, and where the engine shows a turn."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SHARED_DATA, needs_shared_data, run_engine, transcript_of
from transcriber.engine.vad import FRAME_SAMPLES, FRAME_SECONDS, SpeechEnd, SpeechStart, StreamingVad

SILENCE_SECONDS = 1.0


def _speech_in_silence() -> np.ndarray:
    audio, rate = sf.read(
        SHARED_DATA / "utterances/librispeech_tc100_resemblyzer/1040-133433-0000.flac", dtype="float32"
    )
    assert rate == 16000
    silence = np.zeros(int(SILENCE_SECONDS * rate), dtype=np.float32)
    return np.concatenate([silence, audio, silence])


def _loud_span(audio: np.ndarray) -> tuple[float, float]:
    """First and last 30 ms frame within 30 dB of the loudest: where the voice is."""
    frames = audio[: len(audio) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1e-10)
    loud = np.flatnonzero(level > level.max() - 30)
    return loud[0] * FRAME_SECONDS, (loud[-1] + 1) * FRAME_SECONDS


@needs_shared_data
def test_speech_edges_give_the_voice_and_the_padded_audio() -> None:
    audio = _speech_in_silence()
    vad = StreamingVad()
    events = vad.feed(audio) + vad.finish()
    starts = [e for e in events if isinstance(e, SpeechStart)]
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    first, last = _loud_span(audio)
    assert starts[0].voice == pytest.approx(first, abs=0.1)
    # webrtcvad hears a little of a word's fading end
    assert ends[-1].voice == pytest.approx(last, abs=0.2)
    # the recognizer's audio is padded beyond the voice on both sides
    assert starts[0].time <= starts[0].voice - 0.2 + 1e-9
    assert ends[-1].time >= ends[-1].voice + 0.2 - 1e-9


@needs_shared_data
def test_a_turn_is_shown_where_its_voice_is(engine_factory) -> None:
    """The turn's edges at pauses are its voice's, without the recognizer's padding,
    and the second pass's word times do not stretch it back out."""
    audio = _speech_in_silence()
    engine = engine_factory()
    vad = StreamingVad(engine.config.vad_aggressiveness, engine.config.min_silence)
    edges = vad.feed(audio) + vad.finish()
    margin = engine.config.voice_edge_seconds
    transcript = transcript_of(run_engine(engine, audio))
    turns = transcript.sorted_turns()
    assert turns[0].start == pytest.approx(edges[0].voice - margin, abs=1e-6)
    assert turns[-1].end == pytest.approx(edges[-1].voice + margin, abs=1e-6)
    assert turns[-1].end < edges[-1].time
