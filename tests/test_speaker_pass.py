"""The last pass over a file: each speaker's turns decoded again together."""

from __future__ import annotations

import copy
from dataclasses import replace

from conftest import needs_shared_data

from transcriber.engine.speaker_pass import SECTION_SECONDS, revise_by_speaker, speaker_sections
from transcriber.transcript.model import Transcript, Turn, Word


def _turn(turn_id: int, speaker: str, start: float, end: float, channel: int = 0, words: bool = True) -> Turn:
    return Turn(turn_id, speaker, channel, start, end, [Word("so", start, end)] if words else [])


def test_sections_hold_one_speakers_turns_in_order_up_to_a_window() -> None:
    turns = [
        _turn(1, "S1", 0.0, 10.0),
        _turn(2, "S2", 10.5, 14.0),
        _turn(3, "S1", 14.5, 24.0),
        _turn(4, "S2", 24.5, 25.0, channel=1),  # the separator's second channel: its own audio
        _turn(5, "S2", 25.5, 26.0, words=False),  # nothing to revise
        _turn(6, "S1", 26.5, 33.0),  # 10 + 0.3 + 9.5 + 0.3 + 6.5 s would pass the window
    ]
    sections = [[t.turn_id for t in section.turns] for section in speaker_sections(reversed(turns))]
    assert sections == [[1, 3], [2], [6]]
    assert all(
        sum(t.end - t.start for t in s.turns) + 0.3 * (len(s.turns) - 1) <= SECTION_SECONDS
        for s in speaker_sections(turns)
    )


@needs_shared_data
def test_a_sentence_cut_by_another_turn_is_heard_whole(engine_factory, tmp_path) -> None:
    """0L seed 1040: every piece of a sentence decoded where it was said lost words at
    its edges ("and although the hills" -> "and all the hills", "the round sparks of
    dew" -> "the round is parks of the do"), even by the second pass over each
    stretch of turns (live audio's); decoded after the same speaker's turns before
    it, most come back (16 -> 9 errors here)."""
    from transcriber.api import transcribe_file
    from transcriber.audio.decode import iter_blocks
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation import metrics
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    meeting = simulate_meeting(
        load_utterances(), n_speakers=3, condition="0L", seed=1040, aligner=WhisperForcedAligner(cache_dir=tmp_path)
    )
    path = meeting.save(tmp_path)
    stretches = replace(TransducerConfig.for_files(), revise_turns=True, speaker_pass=False)
    engine = engine_factory(transducer=stretches)
    before = transcribe_file(path, engine=engine)
    revisions, cost = revise_by_speaker(before, iter_blocks(path, 1.0), engine.second_pass)
    assert revisions and cost.encoder_seconds > 0
    after = copy.deepcopy(before)
    for revision in revisions:
        turn = after.turn(revision.turn_id)
        turn.words = list(revision.words)
        # each word goes back into the audio of the turn it was heard in
        assert all(turn.start <= w.start <= w.end <= turn.end for w in turn.words)

    def errors(transcript: Transcript) -> int:
        return metrics.cpwer(meeting.to_seglst(), metrics.transcript_to_seglst(transcript, meeting.session_id)).errors

    assert errors(after) < errors(before)


def test_a_cancelled_pass_revises_nothing(loaded_engine) -> None:
    import threading

    import numpy as np

    cancel = threading.Event()
    cancel.set()
    transcript = Transcript(turns=[_turn(1, "S1", 0.0, 2.0), _turn(2, "S1", 2.5, 4.0)])
    blocks = (np.zeros(16000, dtype=np.float32) for _ in range(5))
    revisions, cost = revise_by_speaker(transcript, blocks, loaded_engine.second_pass, cancel)
    assert revisions == [] and cost.encoder_seconds == 0.0
