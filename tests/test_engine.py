"""The streaming engine on real speech: words, turns, speakers, events."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SHARED_DATA, needs_shared_data, run_engine, run_file_engine, transcript_of
from transcriber.engine.events import (
    CostSample,
    PartialText,
    SpeakerRelabelled,
    TurnBoundaryMoved,
    TurnDiscarded,
    TurnEnded,
    TurnRevised,
    TurnSplit,
    TurnStarted,
    WordsCommitted,
)

SAMPLE_RATE = 16000


@needs_shared_data
def test_jfk_is_transcribed_word_for_word(engine_factory) -> None:
    from transcriber.evaluation.metrics import wer

    audio, rate = sf.read(SHARED_DATA / "utterances/jfk_whisper/jfk.flac", dtype="float32")
    assert rate == SAMPLE_RATE
    events = run_engine(engine_factory(), audio)
    transcript = transcript_of(events)
    text = " ".join(turn.text for turn in transcript.sorted_turns())
    reference = (
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    assert wer(reference, text).rate <= 0.05, text
    assert len(transcript.speakers) == 1


@needs_shared_data
def test_event_stream_is_well_formed(engine_factory) -> None:
    """Every turn opens before its words and closes after them; times are consistent."""
    audio, _ = sf.read(SHARED_DATA / "utterances/jfk_whisper/jfk.flac", dtype="float32")
    events = run_engine(engine_factory(), audio, block_seconds=0.5)
    open_turns: dict[int, TurnStarted] = {}
    closed: set[int] = set()
    committed_words = 0
    for event in events:
        if isinstance(event, TurnStarted):
            assert event.turn_id not in open_turns and event.turn_id not in closed
            open_turns[event.turn_id] = event
        elif isinstance(event, WordsCommitted | PartialText):
            assert event.turn_id in open_turns and event.turn_id not in closed
            if isinstance(event, WordsCommitted):
                committed_words += len(event.words)
                for word in event.words:
                    assert open_turns[event.turn_id].start - 0.05 <= word.start <= word.end
                    assert word.end <= event.audio_time + 1e-6, "a word cannot be final before it was heard"
        elif isinstance(event, TurnEnded):
            started = open_turns[event.turn_id]
            assert event.speaker == started.speaker and event.start == started.start <= event.end
            closed.add(event.turn_id)
        elif isinstance(event, TurnRevised):
            assert event.turn_id in closed, "the second pass revises turns that are over"
            assert all(w.start <= w.end <= event.audio_time + 1e-6 for w in event.words)
        assert event.channel == 0
    assert closed == set(open_turns), "every turn that opened was closed"
    assert committed_words >= 20
    costs = [e for e in events if isinstance(e, CostSample)]
    assert costs and sum(e.stage_seconds.get("encoder", 0.0) for e in costs) > 0
    assert sum(e.stage_flops.get("encoder", 0.0) for e in costs) > 1e9
    assert all(0.0 < e.encoder_blocks_run <= 1.0 for e in costs)


@needs_shared_data
def test_second_pass_joins_turns_split_by_a_pause(engine_factory) -> None:
    """A title, a pause, then the text: the streaming pass on the short turns wrote
    "When Wendy grew up, When Wendy"; the second pass decodes the stretch whole."""
    from transcriber.evaluation.metrics import wer

    path = SHARED_DATA / "utterances/librispeech_tc100_resemblyzer/1040-133433-0000.flac"
    audio, _ = sf.read(path, dtype="float32")
    events = run_engine(engine_factory(), audio)
    turns = transcript_of(events).sorted_turns()
    text = " ".join(turn.text for turn in turns)
    reference = (
        "CHAPTER SEVENTEEN WHEN WENDY GREW UP I HOPE YOU WANT TO KNOW WHAT BECAME OF THE OTHER BOYS THEY WERE "
        "WAITING BELOW TO GIVE WENDY TIME TO EXPLAIN ABOUT THEM AND WHEN THEY HAD COUNTED FIVE HUNDRED THEY WENT UP"
    )
    assert len(turns) >= 2 and any(isinstance(e, TurnRevised) for e in events)
    assert wer(reference, text).rate <= 0.05, text
    # without the noise filter too: it drops the streamed duplicate "When Wendy" (its
    # words scored under 0.1), which hides what the second pass is for
    streamed_engine = engine_factory(transducer=_without_second_pass(), min_turn_word_probability=0.0)
    streamed_only = transcript_of(run_engine(streamed_engine, audio))
    streamed_text = " ".join(turn.text for turn in streamed_only.sorted_turns())
    assert wer(reference, text).errors < wer(reference, streamed_text).errors, streamed_text


@needs_shared_data
@pytest.mark.parametrize(
    ("utterance", "ending"),
    [("103-1240-0000", "traversed by a brook"), ("587-41611-0000", "had a shrewd suspicion")],
)
def test_second_pass_keeps_the_end_of_a_turn(engine_factory, utterance: str, ending: str) -> None:
    """Whisper stopped early on these turns in both passes ("... a little hollow," for
    the last 4 s): the last word, stretched over the rest of the audio, is decoded
    again alone."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.metrics import normalize_text

    (path,) = [u.path for u in load_utterances() if u.id == utterance]
    audio, _ = sf.read(path, dtype="float32")
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    text = normalize_text(" ".join(turn.text for turn in transcript.sorted_turns()))
    assert text.endswith(normalize_text(ending)), text


@needs_shared_data
def test_a_turn_the_streaming_pass_skipped_is_decoded_as_it_closes(engine_factory, monkeypatch) -> None:
    """Files have no stretch pass: a turn none of whose streaming hypotheses passed the
    guards (seen: a 6 s sentence left as "the", at probability 0.001) is decoded
    whole as it closes, not discarded as noise before the last pass hears it."""
    from transcriber.engine.transducer import StepCost, TransducerConfig, TurnTransducer
    from transcriber.evaluation.metrics import wer

    monkeypatch.setattr(TurnTransducer, "_hypothesis", lambda self: (None, StepCost()))
    audio, _ = sf.read(SHARED_DATA / "utterances/jfk_whisper/jfk.flac", dtype="float32")
    events = run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio)
    assert not [e for e in events if isinstance(e, WordsCommitted) and e.words]
    assert not [e for e in events if isinstance(e, TurnDiscarded)]
    text = " ".join(turn.text for turn in transcript_of(events).sorted_turns())
    reference = (
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    assert wer(reference, text).rate <= 0.05, text


@needs_shared_data
@pytest.mark.parametrize("cut_seconds", [3.3, 3.4])
def test_second_pass_hears_past_a_cut_in_a_sentence(loaded_engine, cut_seconds: float) -> None:
    """A stretch cut from the speech after it (0S seed 1010: "A single moment served |
    to convince the youth") is decoded with the start of that speech: alone, its end
    came out "A single moment soon." or stopped at "Iliad.". The words heard after the
    cut are left to the next stretch."""
    from transcriber.engine.transducer import SecondPass, TransducerConfig
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.metrics import normalize_text

    (path,) = [u.path for u in load_utterances() if u.id == "1502-122615-0000"]
    audio, _ = sf.read(path, dtype="float32")
    cut = int(cut_seconds * 16000)
    second_pass = SecondPass(loaded_engine.recognizer, TransducerConfig.for_files())
    words, _ = second_pass.revise(audio[:cut], 0.0, [], "", lookahead=audio[cut:])
    text = normalize_text(" ".join(w.text for w in words))
    assert text == normalize_text("Pope's Iliad. A single moment served"), text
    assert all(w.start < cut_seconds for w in words)


@needs_shared_data
def test_second_pass_leaves_whispers_unpunctuated_style(engine_factory, tmp_path) -> None:
    """In its 30 s window Whisper decodes these 23.5 s of a simulated meeting in its
    lowercase style without punctuation, and mishears more ("Nellie a year went by
    the face who ..."); such a decode is done again in a window of its own length
    (16 -> 14 errors in 76 words here; the meeting's cpWER 16.1 -> 12.4 %; measured on
    an AVX-512 CPU)."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_audio, load_utterances
    from transcriber.evaluation.metrics import wer
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0S", seed=1006, aligner=aligner)
    start, end = 0.16, 23.7
    audio = load_audio(meeting.save(tmp_path))[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    reference = " ".join(s["words"] for s in meeting.to_seglst() if s["end_time"] <= end)

    def second_pass_text(retry_words: int) -> str:
        config = TransducerConfig.for_files()
        config.unpunctuated_retry_words = retry_words
        words, _ = engine_factory(transducer=config).second_pass.revise(audio, start, [], context="")
        return " ".join(w.text for w in words)

    without_retry, with_retry = second_pass_text(10**6), second_pass_text(12)
    if "." in without_retry:
        # int8 kernels round differently by instruction set: on an AVX2-only CPU the 30 s
        # window keeps its punctuation here ("Nellie, a year went by. The fates, ...").
        # A punctuated decode must then stay as it is.
        assert with_retry == without_retry
        return
    assert with_retry.count(".") >= 3, with_retry
    assert wer(reference, with_retry).errors < wer(reference, without_retry).errors, with_retry


def _without_second_pass():
    from transcriber.engine.transducer import TransducerConfig

    return TransducerConfig(revise_turns=False)


def test_silence_and_noise_give_no_words(engine_factory) -> None:
    rng = np.random.default_rng(0)
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    hiss = (0.003 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    events = run_engine(engine_factory(), np.concatenate([silence, hiss]))
    assert not [e for e in events if isinstance(e, WordsCommitted)]
    assert not transcript_of(events).turns, "a turn the VAD opened on noise is discarded"


@needs_shared_data
def test_turns_on_background_noise_leave_the_transcript(engine_factory) -> None:
    """AMI excerpt trn02: 30 s of a quiet room (0.7 s of annotated speech) where the VAD
    opens a dozen turns on background noise; those without words are discarded, and
    a lone "." is no word. Before: 15 turns, 9 of them empty or ".", 7.3 s of false alarm."""
    audio, _ = sf.read(SHARED_DATA / "sessions/pyannote_ami_debug/trn02.flac", dtype="float32")
    events = run_engine(engine_factory(), audio)
    assert any(isinstance(e, TurnDiscarded) for e in events)
    transcript = transcript_of(events)
    assert all(any(c.isalnum() for c in turn.text) for turn in transcript.turns), transcript.turns
    assert len(transcript.turns) <= 10


def test_block_size_does_not_lose_audio(engine_factory) -> None:
    """Odd block sizes (as a sound card delivers them) still give whole turns."""
    engine = engine_factory()
    audio = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    events = run_engine(engine, audio, block_seconds=0.0371)
    assert engine.time == pytest.approx(3.0, abs=1e-6)
    assert not [e for e in events if isinstance(e, TurnStarted)]


@needs_shared_data
@pytest.mark.slow
def test_simulated_three_speaker_meeting(engine_factory) -> None:
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.metrics import cpwer, der, transcript_to_seglst, transcript_to_segments
    from transcriber.evaluation.simulate import simulate_meeting

    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0L", seed=2)
    events = run_engine(engine_factory(), meeting.audio)
    transcript = transcript_of(events)
    assert len(transcript.speakers) == 3
    reference = meeting.to_seglst()
    errors = cpwer(reference, transcript_to_seglst(transcript, meeting.session_id))
    assert errors.rate < 0.20, errors
    assert der(meeting.segments, transcript_to_segments(transcript)).rate < 0.15


@needs_shared_data
def test_two_voices_in_one_turn_are_split_in_their_pause(engine_factory) -> None:
    """ "The contrary is true." and, after a pause too short for the VAD, another
    speaker's "Chapter 35.": one turn, too short for the live check, and with no
    other turn of either voice the resegmentation knows neither. The pause split
    parts them (in 0S meetings such a turn gave its mixed voice to one speaker, who
    then took over a third speaker's turns). One voice with pauses stays whole."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_utterances

    paths = {u.id: u.path for u in load_utterances()}
    first, _ = sf.read(paths["5750-100289-0000"], dtype="float32")
    second, _ = sf.read(paths["1246-124548-0000"], dtype="float32")

    def piece(audio: np.ndarray, start: float, end: float) -> np.ndarray:
        return audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]

    def quiet(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)

    files = TransducerConfig.for_files()
    two = np.concatenate([quiet(0.5), piece(first, 0.3, 1.98), quiet(0.05), piece(second, 0.11, 1.48), quiet(0.5)])
    events = run_file_engine(engine_factory(transducer=files), two)
    assert len([e for e in events if isinstance(e, TurnEnded)]) == 1, "the VAD heard one turn"
    turns = transcript_of(events).sorted_turns()
    from transcriber.evaluation.metrics import normalize_text

    texts = [normalize_text(t.text) for t in turns]
    assert len(turns) == 2 and texts[0].endswith("true") and texts[1].startswith("chapter"), texts
    assert turns[0].speaker != turns[1].speaker
    unsplit = transcript_of(run_file_engine(engine_factory(transducer=files, pause_split=False), two))
    assert len(unsplit.turns) == 1, "without the pause split it stays one turn"

    one = np.concatenate([quiet(0.5), piece(second, 6.82, 14.19), quiet(0.5)])  # three sentences, two pauses
    events = run_file_engine(engine_factory(transducer=files), one)
    assert not any(isinstance(e, TurnSplit) for e in events)
    assert len(transcript_of(events).speakers) == 1


@needs_shared_data
def test_interjections_without_pauses_get_their_own_turns(engine_factory, tmp_path) -> None:
    """0S: people answer within 0.1-0.5 s, so several speakers share a VAD turn, and a
    1-2 s interjection is short for the live change check. Each person's words still
    end up in turns of their own: split live, or at the end of the stream by the
    resegmentation (this meeting with GE2E: cpWER 35.7 % without that, 16.3 % with;
    6.2 % once word times came from the right alignment rows and splits moved into
    the pause between the voices)."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.metrics import cpwer, transcript_to_seglst
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=4, condition="0S", seed=1005, aligner=aligner)
    events = run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), meeting.audio)
    known = {e.turn_id for e in events if isinstance(e, TurnEnded)}
    for split in (e for e in events if isinstance(e, TurnSplit)):
        # a split divides a finished turn (or a piece of one) into a new turn
        assert split.turn_id in known and split.new_turn_id not in known and split.keep_words >= 1
        known.add(split.new_turn_id)
    transcript = transcript_of(events)
    assert len(transcript.speakers) == 4

    def said_by(time: float) -> str | None:
        return next((s.speaker for s in meeting.segments if s.start <= time <= s.end), None)

    mixed = []
    for turn in transcript.turns:
        counts = collections.Counter(said_by((w.start + w.end) / 2) for w in turn.words)
        counts.pop(None, None)
        if len(counts) > 1 and sorted(counts.values())[-2] >= 2:  # a word or so late: not mixed
            mixed.append((turn.text, dict(counts)))
    assert len(transcript.turns) >= len(meeting.segments) - 1 and not mixed, mixed
    errors = cpwer(meeting.to_seglst(), transcript_to_seglst(transcript, meeting.session_id))
    # 10.1 % with GE2E on this 2-core machine since 2026-11-27 (it had passed < 10 %
    # before: float rounding of the int8 kernels moves a word or two)
    assert errors.rate < 0.12, errors


@needs_shared_data
def test_a_late_change_of_speaker_moves_back_to_the_pause(engine_factory, tmp_path) -> None:
    """0S: the live check finds a change of voice a window late, and the words
    committed by then stay in the old turn ("... content. The" | "wind, Prince of
    Air"). At the end the change moves back to the pause between the voices, and
    those words go to the next speaker (this meeting: cpWER 7.5 -> 4.2 %)."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_audio, load_utterances
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=4, condition="0S", seed=1007, aligner=aligner)
    # through the file, as the benchmark has it: 16-bit samples change what Whisper hears
    audio = load_audio(meeting.save(tmp_path))
    events = run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio)
    assert any(isinstance(e, TurnBoundaryMoved) for e in events)
    turns = transcript_of(events).sorted_turns()
    words = [(w.text.strip(",.").lower(), turn.speaker) for turn in turns for w in turn.words]
    speaker_of = {}
    for (word, speaker), (following, next_speaker) in itertools.pairwise(words):
        speaker_of[(word, following)] = (speaker, next_speaker)
    # each pair: the first word of a speaker's sentence and the word after it
    for first, second in [("the", "wind"), ("among", "indian"), ("but", "more")]:
        speakers = speaker_of[(first, second)]
        assert speakers[0] == speakers[1], (first, second, speakers)
    # and the word before it stays with the previous speaker
    for before, first in [("content", "the"), ("hugh", "among")]:
        speakers = speaker_of[(before, first)]
        assert speakers[0] != speakers[1], (before, first, speakers)


@needs_shared_data
def test_a_similar_voice_after_a_pause_is_a_speaker_of_its_own(engine_factory, tmp_path) -> None:
    """0S seed 1013: a 9 s utterance follows another speaker's 3 s turn after a 0.34 s
    pause, and the two voices score 0.72 alike (one voice over such lengths: 0.9 and
    more). Under the short-side threshold (0.55) the turn stayed whole and its
    speaker swallowed a fourth person (cpWER 42 %)."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_audio, load_utterances
    from transcriber.evaluation.metrics import cpwer, transcript_to_seglst
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=4, condition="0S", seed=1013, aligner=aligner)
    audio = load_audio(meeting.save(tmp_path))
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    assert len({turn.speaker for turn in transcript.turns if turn.words}) == 4
    errors = cpwer(meeting.to_seglst(), transcript_to_seglst(transcript, meeting.session_id))
    assert errors.rate < 0.10, errors  # 5.4 % here on 2026-11-27


@needs_shared_data
def test_voices_that_alternate_within_one_turn_are_told_apart(engine_factory, tmp_path) -> None:
    """0S seed 1016: two speakers alternate in 1-5 s pieces with 0.3-0.5 s pauses for
    15 s; the VAD keeps it one turn, the live check never sees two strange windows in
    a row, and both halves around any pause hold both voices. The first of them was
    merged with the third speaker (cpWER 64 %), and the second pass jumped over one
    of the sentences."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_audio, load_utterances
    from transcriber.evaluation.metrics import cpwer, transcript_to_seglst
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0S", seed=1016, aligner=aligner)
    audio = load_audio(meeting.save(tmp_path))
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    assert len({turn.speaker for turn in transcript.turns if turn.words}) == 3
    said = " ".join(turn.text for turn in transcript.turns).lower()
    assert "of the same salute which had" in said  # CAM++'s turns: "reputation"
    errors = cpwer(meeting.to_seglst(), transcript_to_seglst(transcript, meeting.session_id))
    assert errors.rate < 0.15, errors  # 5.7 % here on 2026-11-27


@needs_shared_data
@pytest.mark.parametrize(
    ("seed", "piece"),
    [
        # the live check placed a change 4 s late, inside the next speaker's sentence;
        # "its two sides never share a speaker" then made the sentence's end a 4th one
        (1028, "at the omnibus house"),
        # a pause split of the turn before a change left that constraint on the turn's
        # first part, not on the part next to the change: a 4th speaker again
        (1036, "the durability of fragile things"),
    ],
)
def test_a_piece_of_an_utterance_is_not_a_speaker_of_its_own(engine_factory, tmp_path, seed: int, piece: str) -> None:
    """0S meetings not tuned on: a voice change detected live splits an utterance (or
    sits next to it) and the piece became a speaker of its own (cpWER 26 % and 13 %)."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import load_audio, load_utterances
    from transcriber.evaluation.metrics import cpwer, transcript_to_seglst
    from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting

    aligner = WhisperForcedAligner(cache_dir=tmp_path)
    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0S", seed=seed, aligner=aligner)
    audio = load_audio(meeting.save(tmp_path))
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    assert len({turn.speaker for turn in transcript.turns if turn.words}) == 3
    owner = next(turn.speaker for turn in transcript.turns if piece in turn.text.lower())
    assert sum(turn.speaker == owner for turn in transcript.turns if turn.words) > 1
    errors = cpwer(meeting.to_seglst(), transcript_to_seglst(transcript, meeting.session_id))
    assert errors.rate < 0.15, errors  # 10.1 % and 3.7 % here on 2026-11-27


@needs_shared_data
@pytest.mark.slow
def test_known_speaker_count_is_respected(engine_factory) -> None:
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.simulate import simulate_meeting

    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0S", seed=1)
    engine = engine_factory()
    engine.clustering.fixed_speakers = 2
    transcript = transcript_of(run_engine(engine, meeting.audio))
    assert len(transcript.speakers) == 2


@needs_shared_data
@pytest.mark.slow
def test_pyannote_sample_diarization(engine_factory) -> None:
    from transcriber.evaluation.data import read_rttm
    from transcriber.evaluation.metrics import der, transcript_to_segments

    folder = SHARED_DATA / "sessions/pyannote_sample"
    audio, _ = sf.read(folder / "sample.flac", dtype="float32")
    events = run_engine(engine_factory(), audio)
    transcript = transcript_of(events)
    result = der(read_rttm(folder / "sample.rttm"), transcript_to_segments(transcript))
    # telephone speech with fast turn-taking: GE2E windows of 1.5 s barely separate the two
    # voices (same 0.75-0.79, different 0.69 cosine); the issue aims at 0.25. GE2E: 30.9 %
    # on 2026-11-27; 50.7 % when the voice change between its two mixed turns was
    # dropped. CAM++ (the default): 29.9 % with this live configuration, 21.3 % with
    # the file configuration (benchmark)
    assert result.rate < 0.35, result
    assert any(isinstance(e, SpeakerRelabelled) for e in events) or len(transcript.speakers) >= 2


@needs_shared_data
def test_quiet_stretches_of_a_meeting_are_not_given_to_a_speaker(engine_factory) -> None:
    """AMI excerpt trn01: 28 s of room noise and far-off talk before a burst of
    speech. webrtcvad hears voice in most of it; one turn ran 12 s around the two
    words "Yeah, you" (DER false alarm 19.9 s). Turns are shown around their words."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import read_rttm, read_uem
    from transcriber.evaluation.metrics import der, transcript_to_segments

    folder = SHARED_DATA / "sessions/pyannote_ami_debug"
    audio, _ = sf.read(folder / "trn01.flac", dtype="float32")
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    result = der(read_rttm(folder / "trn01.rttm"), transcript_to_segments(transcript), read_uem(folder / "trn01.uem"))
    assert result.false_alarm < 8.0, result  # 3.6 s on 2026-11-29
    # no word is stretched over the quiet ("Yeah," ran from 5.5 to 17.3 s)
    assert max(w.end - w.start for turn in transcript.turns for w in turn.words) <= 1.41


@needs_shared_data
@pytest.mark.slow
def test_pyannote_sample_words_with_the_file_configuration(engine_factory) -> None:
    """Fast telephone turn-taking: one 8 s turn came out as "Hello." from both passes
    (the prompt "Hey. Hello." made Whisper stop); such a turn is decoded again alone.
    Both passes may also jump over 3 s of it, leaving a 3 s "Hello.": such a word is
    decoded again alone too. (A file's second pass is now its last pass, over each
    speaker's turns: it keeps the long-word re-decode, not the one of a whole turn.)"""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import read_stm
    from transcriber.evaluation.metrics import normalize_text, orc_wer, transcript_to_seglst

    folder = SHARED_DATA / "sessions/pyannote_sample"
    audio, _ = sf.read(folder / "sample.flac", dtype="float32")
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    reference = [
        {"session_id": "sample", "speaker": s.speaker, "start_time": s.start, "end_time": s.end, "words": s.text}
        for s in read_stm(folder / "sample.stm")
    ]
    errors = orc_wer(reference, transcript_to_seglst(transcript, "sample"))
    # faster-whisper tiny.en: 13.8 % on this sample; before the re-decode: 47 %; with
    # GE2E 28.7 %, then 31.0 % on 2026-11-27 with the same code (machine-dependent
    # rounding); with CAM++ 33.3 %: the same words, but its turns change speaker a
    # word early or late inside two sentences ("I didn't know you were | there.")
    assert errors.rate < 0.36, errors
    # case and punctuation aside: a turn may begin inside the sentence ("know | You were")
    text = normalize_text(" ".join(turn.text for turn in transcript.sorted_turns()))
    assert normalize_text("didn't know you were there") in text, "the skipped stretch is back"


@needs_shared_data
def test_no_thank_you_on_a_quiet_meeting_room(engine_factory) -> None:
    """AMI excerpt trn02: 30 s of a meeting room in which one person speaks for 0.7 s.
    Whisper wrote "Thank you" and "you" on the room's noise, confident in the words
    (log-probability -0.8) though it rated them 0.66-0.94 likely not speech: three
    turns that nobody spoke."""
    from transcriber.engine.transducer import TransducerConfig
    from transcriber.evaluation.data import read_rttm

    folder = SHARED_DATA / "sessions/pyannote_ami_debug"
    audio, _ = sf.read(folder / "trn02.flac", dtype="float32")
    transcript = transcript_of(run_file_engine(engine_factory(transducer=TransducerConfig.for_files()), audio))
    spoken = [(s.start, s.end) for s in read_rttm(folder / "trn02.rttm")]
    assert len(spoken) == 1
    invented = [t for t in transcript.turns if not any(t.start < end and start < t.end for start, end in spoken)]
    assert not invented, [(t.start, t.text) for t in invented]


def test_window_stays_bounded_without_agreement(engine_factory) -> None:
    """A long turn whose hypotheses never agree still keeps Whisper's window under 30 s."""
    engine = engine_factory()
    transducer_config = engine.config.transducer
    rng = np.random.default_rng(1)
    # loud broadband noise with a speech-like 4 Hz envelope keeps the VAD in one long turn
    t = np.arange(40 * SAMPLE_RATE) / SAMPLE_RATE
    babble = (0.3 * rng.standard_normal(len(t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    longest = 0.0
    seconds_in_turn = 0
    for start in range(0, len(babble), SAMPLE_RATE):
        engine.feed(babble[start : start + SAMPLE_RATE])
        if engine.turn is not None:
            seconds_in_turn += 1
            longest = max(longest, len(engine.turn.transducer.buffer) / SAMPLE_RATE)
    engine.finish()
    assert seconds_in_turn >= 30, "the scenario needs one long turn"
    assert longest <= transducer_config.force_commit_seconds + transducer_config.step_seconds + 1.0
