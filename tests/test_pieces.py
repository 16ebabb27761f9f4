"""A file cut into pieces recognised at once, one per core (engine/pieces.py)."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SHARED_DATA, needs_shared_data, outbox_items, transcript_of
from transcriber.engine.events import CostSample, TurnStarted
from transcriber.engine.pieces import TURN_ID_STRIDE, longest_pause, piece_count, transcribe_in_pieces
from transcriber.engine.speaker_pass import last_pass
from transcriber.engine.transducer import TransducerConfig
from transcriber.session.runner import FileTranscription, Finished, Problem
from transcriber.session.store import SessionStore

SAMPLE_RATE = 16000


def blocks_of(audio: np.ndarray, block_seconds: float = 1.0):
    """A block source over audio in memory, as iter_blocks(path, start_seconds=...) is over a file."""

    def blocks_from(seconds: float):
        block = int(block_seconds * SAMPLE_RATE)
        for start in range(round(seconds * SAMPLE_RATE), len(audio), block):
            yield audio[start : start + block]

    return blocks_from


def test_only_files_of_two_pieces_or_more_are_cut() -> None:
    assert piece_count(119.0, threads=2, min_piece_seconds=60.0) == 1
    assert piece_count(120.0, threads=2, min_piece_seconds=60.0) == 2
    assert piece_count(3600.0, threads=2, min_piece_seconds=60.0) == 2
    assert piece_count(3600.0, threads=1, min_piece_seconds=60.0) == 1
    assert piece_count(None, threads=2, min_piece_seconds=60.0) == 1
    assert piece_count(3600.0, threads=2, min_piece_seconds=float("inf")) == 1


@needs_shared_data
def test_the_cut_falls_in_the_longest_pause() -> None:
    speech = [sf.read(SHARED_DATA / "utterances" / "jfk_whisper" / "jfk.flac", dtype="float32")[0]] * 3
    silence = [np.zeros(int(s * SAMPLE_RATE), dtype=np.float32) for s in (0.4, 2.5)]
    audio = np.concatenate([speech[0], silence[0], speech[1], silence[1], speech[2]])
    gap_start = (len(speech[0]) + len(silence[0]) + len(speech[1])) / SAMPLE_RATE
    cut = longest_pause(audio, 12.0, aggressiveness=2)
    assert 12.0 + gap_start < cut < 12.0 + gap_start + 2.5
    assert round(cut * SAMPLE_RATE) % 480 == 0  # on a VAD frame, as the next piece's VAD counts


@pytest.fixture(scope="module")
def meeting():
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.simulate import simulate_meeting

    return simulate_meeting(load_utterances(), n_speakers=3, condition="0L", seed=2)


@needs_shared_data
def test_a_meeting_in_two_pieces_is_transcribed_whole(engine_factory, meeting, tmp_path) -> None:
    from transcriber.api import transcribe_file
    from transcriber.audio.decode import iter_blocks
    from transcriber.evaluation.metrics import cpwer, der, transcript_to_seglst, transcript_to_segments

    path = tmp_path / "meeting.flac"
    sf.write(path, meeting.audio, SAMPLE_RATE)
    config = dict(min_piece_seconds=15.0, transducer=TransducerConfig.for_files())
    assert piece_count(meeting.duration, 2, 15.0) == 2
    events: list = []
    blocks_from = lambda seconds: iter_blocks(path, start_seconds=seconds)  # noqa: E731
    engine = engine_factory(**config)
    end = transcribe_in_pieces(engine, blocks_from, 2, meeting.duration, events.extend)
    assert end == pytest.approx(meeting.duration, abs=1e-3)
    # then the file's last pass, as transcribe_file and the app's file job run it
    events += last_pass(engine, transcript_of(events), blocks_from(0.0))
    transcript = transcript_of(events)

    # both pieces were heard: words near the start and near the end
    words = [w for turn in transcript.turns for w in turn.words]
    assert min(w.start for w in words) < 0.2 * meeting.duration
    assert max(w.end for w in words) > 0.8 * meeting.duration
    # turns numbered on from piece 0's, each once; every piece reported its costs
    started = [e.turn_id for e in events if isinstance(e, TurnStarted)]
    assert len(started) == len(set(started)) and max(started) < TURN_ID_STRIDE
    costs = sorted((e.audio_start, e.audio_end) for e in events if isinstance(e, CostSample))
    assert costs[0][0] == 0.0 and costs[-1][1] == pytest.approx(meeting.duration, abs=1e-3)
    assert all(a[1] == pytest.approx(b[0], abs=1e-6) for a, b in itertools.pairwise(costs))
    # speakers clustered across the pieces, as in one stream (test_engine's bounds)
    assert len(transcript.speakers) == 3
    assert cpwer(meeting.to_seglst(), transcript_to_seglst(transcript, meeting.session_id)).rate < 0.20
    assert der(meeting.segments, transcript_to_segments(transcript)).rate < 0.15

    # the file API cuts the file the same way, whatever the threads' timing
    def turns(transcript):
        return [(t.turn_id, t.speaker, t.start, t.end, t.text) for t in transcript.sorted_turns()]

    again = transcribe_file(path, engine=engine_factory(**config))
    assert turns(again) == turns(transcript)

    # ...and so does the app's file job, into a session (journal and audio)
    store = SessionStore(tmp_path / "sessions")
    session = store.create("meeting.flac", source=str(path))
    job = FileTranscription(
        session,
        engine_factory(**config),
        iter_blocks(path),
        meeting.duration,
        source=blocks_from,
    )
    job.start()
    assert job.wait(600)
    items = outbox_items(job.outbox)
    assert not [item for item in items if isinstance(item, Problem)]
    assert isinstance(items[-1], Finished) and not items[-1].cancelled
    assert job.progress().recognized_seconds == pytest.approx(meeting.duration, abs=1.0)
    reopened = store.open(session.id)
    assert reopened.info.duration_seconds == pytest.approx(meeting.duration, abs=0.01)
    assert turns(reopened.transcript()) == turns(transcript)


@needs_shared_data
def test_a_file_job_in_pieces_can_be_cancelled(engine_factory, meeting, tmp_path) -> None:
    session = SessionStore(tmp_path / "sessions").create("meeting.flac", source="meeting.flac")
    engine = engine_factory(min_piece_seconds=15.0, transducer=TransducerConfig.for_files())
    source = blocks_of(meeting.audio)
    job = FileTranscription(session, engine, source(0.0), meeting.duration, source=source)
    threads_before = threading.active_count()
    job.start()
    while job.progress().recognized_seconds < 5.0 and job.running:
        time.sleep(0.05)
    job.cancel()
    assert job.wait(60)
    items = outbox_items(job.outbox)
    assert isinstance(items[-1], Finished) and items[-1].cancelled
    assert job.progress().recognized_seconds < 0.9 * meeting.duration
    assert threading.active_count() == threads_before


@needs_shared_data
def test_a_failing_piece_fails_the_file_and_stops_the_others(engine_factory, meeting) -> None:
    class DecoderGaveUp(Exception):
        pass

    good = blocks_of(meeting.audio)

    def blocks_from(seconds: float):
        for block in good(seconds):
            if seconds > 0:  # the second piece's decoder fails at its start
                raise DecoderGaveUp("corrupt frame")
            yield block

    threads_before = threading.active_count()
    with pytest.raises(DecoderGaveUp):
        transcribe_in_pieces(engine_factory(), blocks_from, 2, meeting.duration, lambda events: None)
    assert threading.active_count() == threads_before
