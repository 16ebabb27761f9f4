"""End-of-stream resegmentation: which words of a turn are in another voice."""

from __future__ import annotations

import numpy as np

from transcriber.engine.resegment import (
    Loudness,
    VoiceWindows,
    pause_near,
    pauses,
    said_before,
    speaker_centroids,
    split_in_pause,
    voice_change_in_pause,
    voice_pieces,
    word_voices,
)
from transcriber.whisper.decoding import TimedWord


def _words(*spans: tuple[str, float]) -> list[TimedWord]:
    return [TimedWord(text, start, start + 0.3, 0.9) for text, start in spans]


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


A, B = _unit(1.0, 0.1, 0.0), _unit(0.1, 1.0, 0.0)


def test_centroids_average_each_speakers_windows() -> None:
    windows = [VoiceWindows(np.array([1.0, 2.0]), np.stack([A, A])), None, VoiceWindows(np.array([5.0]), B[None])]
    centroids = speaker_centroids(windows, ["S1", "S1", "S2"])
    assert set(centroids) == {"S1", "S2"}
    np.testing.assert_allclose(centroids["S1"], A, atol=1e-6)
    np.testing.assert_allclose(centroids["S2"], B, atol=1e-6)


def test_words_take_the_voice_of_the_nearest_window() -> None:
    words = _words(("one", 0.1), ("two", 0.6), ("three", 1.6), ("four", 2.1), ("five", 3.1))
    windows = VoiceWindows(np.array([0.5, 1.0, 2.0, 2.5, 3.0]), np.stack([A, A, B, B, A]))
    voices = word_voices(words, windows, "S1", {"S1": A, "S2": B}, margin=0.05)
    assert voices == ["S1", "S1", "S2", "S2", "S1"]
    # a margin larger than the difference keeps every word with the turn's speaker
    assert word_voices(words, windows, "S1", {"S1": A, "S2": B}, margin=2.0) == ["S1"] * 5
    # one known speaker: nothing to compare with
    assert word_voices(words, windows, "S1", {"S1": A}, margin=0.0) == ["S1"] * 5


def test_runs_of_another_voice_become_pieces() -> None:
    words = _words(*[(f"w{i}", float(i)) for i in range(7)])
    voices = ["S1", "S1", "S2", "S2", "S2", "S1", "S1"]
    pieces = voice_pieces(words, voices, "S1", min_words=2)
    assert [(p.speaker, [w.text for w in p.words]) for p in pieces] == [
        ("S1", ["w0", "w1"]),
        ("S2", ["w2", "w3", "w4"]),
        ("S1", ["w5", "w6"]),
    ]


def test_a_stray_word_in_another_voice_stays_in_the_turn() -> None:
    words = _words(*[(f"w{i}", float(i)) for i in range(5)])
    pieces = voice_pieces(words, ["S2", "S1", "S1", "S3", "S1"], "S1", min_words=2)
    assert [(p.speaker, len(p.words)) for p in pieces] == [("S1", 5)]
    # a whole turn in another voice is one piece of that voice (the turn is relabelled)
    pieces = voice_pieces(words, ["S2"] * 5, "S1", min_words=2)
    assert [(p.speaker, len(p.words)) for p in pieces] == [("S2", 5)]


def _loudness_with_pauses(duration: float, pauses: list[tuple[float, float]]) -> Loudness:
    """Speech at -20 dBFS, silence at -70 dBFS inside ``pauses``, 20 ms frames."""
    rng = np.random.default_rng(0)
    audio = rng.normal(0.0, 0.1, int(duration * 16000)).astype(np.float32)
    for start, end in pauses:
        audio[int(start * 16000) : int(end * 16000)] *= 10 ** (-50 / 20)
    return Loudness.of(audio, 0.0, 16000)


def test_loudness_finds_the_longest_pause() -> None:
    loudness = _loudness_with_pauses(4.0, [(1.0, 1.3), (2.0, 2.1)])
    floor = loudness.speech_db() - 20
    assert abs(loudness.pause_seconds(0.5, 1.5, floor) - 0.3) < 0.03
    assert abs(loudness.pause_seconds(1.8, 2.5, floor) - 0.1) < 0.03
    assert loudness.pause_seconds(2.5, 3.5, floor) == 0.0


def test_a_split_moves_to_the_pause_between_two_voices() -> None:
    # the second voice starts at 2.2 s, after a 0.3 s pause; the windows put the change
    # one word late (before "four")
    words = _words(("one", 0.2), ("two", 0.9), ("three", 1.4), ("Then", 2.25), ("four", 2.8), ("five", 3.3))
    loudness = _loudness_with_pauses(4.0, [(1.9, 2.2)])
    assert split_in_pause(words, 4, loudness, search=2, below_speech_db=20) == 3
    # no pause within reach, or no search: the split stays
    assert split_in_pause(words, 4, _loudness_with_pauses(4.0, []), search=2, below_speech_db=20) == 4
    assert split_in_pause(words, 4, loudness, search=0, below_speech_db=20) == 4
    # another split's territory is out of bounds
    assert split_in_pause(words, 5, loudness, search=2, below_speech_db=20, bounds=(4, 5)) == 5


def _loudness(*quiet: tuple[float, float], seconds: float = 6.0) -> Loudness:
    """Speech at -20 dB, silence at -70 dB in the ``quiet`` spans."""
    frames = np.arange(int(seconds / 0.02)) * 0.02
    db = np.full(len(frames), -20.0)
    for start, end in quiet:
        db[(frames >= start) & (frames < end)] = -70.0
    return Loudness(0.0, 0.02, db)


def test_pauses_are_quiet_runs_inside_the_speech() -> None:
    loudness = _loudness((0.0, 0.5), (2.0, 2.3), (3.0, 3.1), (5.5, 6.0))
    found = pauses(loudness, below_speech_db=20.0, min_seconds=0.2)
    # leading and trailing silence are no pause; 0.1 s is too short
    assert [(round(a, 2), round(b, 2)) for a, b in found] == [(2.0, 2.3)]


def test_a_pause_between_two_voices_is_found_and_one_voice_has_none() -> None:
    times = np.arange(0.75, 6.0, 0.5)  # 1.5 s windows every 0.5 s over 6 s of turn
    pause = (2.2, 2.5)
    two_voices = VoiceWindows(times, np.stack([A if t < 2.4 else B for t in times]))
    assert voice_change_in_pause(two_voices, [(1.0, 1.3), pause], half_window=0.75, threshold=0.5) == pause
    one_voice = VoiceWindows(times, np.stack([A for _ in times]))
    assert voice_change_in_pause(one_voice, [(1.0, 1.3), pause], half_window=0.75, threshold=0.5) is None
    # a side without a window of its own (0.8 s of speech) cannot be told apart
    assert voice_change_in_pause(two_voices, [(0.8, 1.0)], half_window=0.75, threshold=0.5) is None


def test_a_late_change_moves_to_the_nearest_pause_before_it() -> None:
    spans = [(1.0, 1.4), (2.5, 2.7), (3.4, 3.6)]
    # the nearest before, not the longest (a comma can pause longer than a change)
    assert pause_near(spans, 3.0, seconds_before=1.0, seconds_after=0.1) == (2.5, 2.7)
    assert pause_near(spans, 2.6, seconds_before=1.0, seconds_after=0.1) == (2.5, 2.7)  # already in one
    # a change is seldom early: a pause well after it is not taken
    assert pause_near(spans, 3.2, seconds_before=0.3, seconds_after=0.1) is None
    assert pause_near(spans, 3.35, seconds_before=0.3, seconds_after=0.1) == (3.4, 3.6)
    assert pause_near([], 3.0, seconds_before=1.0, seconds_after=0.1) is None


def test_two_touching_turns_share_one_loudness() -> None:
    first, second = _loudness(seconds=2.0), _loudness((0.0, 0.2), seconds=1.0)
    joined = first.followed_by(Loudness(2.0, 0.02, second.db))
    assert abs(joined.end - 3.0) < 1e-9
    assert [(round(a, 2), round(b, 2)) for a, b in pauses(joined, 20.0, 0.1)] == [(2.0, 2.2)]
    # a gap between them is silence
    apart = first.followed_by(Loudness(2.3, 0.02, _loudness(seconds=1.0).db))
    assert [(round(a, 2), round(b, 2)) for a, b in pauses(apart, 20.0, 0.1)] == [(2.0, 2.3)]


def test_a_word_that_starts_in_the_pause_was_said_after_it() -> None:
    # alignment stretched "Chapter" back over the pause before it (1.67-1.89 s)
    words = [
        TimedWord("Chapter", 0.25, 0.95, 0.9),
        TimedWord("27", 0.95, 1.75, 0.9),
        TimedWord("Chapter", 1.75, 2.4, 0.9),
    ]
    assert said_before(words, (1.67, 1.89)) == 2
    assert said_before(words, (1.72, 1.89)) == 3  # within the slack: before
    assert said_before(words, (1.72, 1.89), slack=-0.05) == 2


def test_long_sides_need_to_be_more_alike_to_stay_one_voice() -> None:
    times = np.arange(0.75, 9.0, 0.5)  # 9 s of turn, a pause at 4.2-4.5 s
    similar = _unit(1.0, 1.2, 0.0)  # 0.71 alike with A: a similar voice
    windows = VoiceWindows(times, np.stack([A if t < 4.3 else similar for t in times]))
    pause = (4.2, 4.5)
    assert voice_change_in_pause(windows, [pause], half_window=0.75, threshold=0.55) is None
    assert voice_change_in_pause(windows, [pause], 0.75, 0.55, long_threshold=0.8, long_windows=5) == pause
    # short sides keep the strict threshold
    short = VoiceWindows(times[:7], windows.embeddings[:7])
    assert voice_change_in_pause(short, [(2.2, 2.5)], 0.75, 0.55, long_threshold=0.8, long_windows=5) is None


def test_voices_that_take_turns_in_one_turn_are_told_at_their_pause() -> None:
    """0S seed 1016: two voices alternate in 2 s pieces within one turn; everything
    before a pause and everything after it hold both voices and score alike, the
    pieces next to the pause do not."""
    times = np.arange(0.75, 10.0, 0.5)
    changes = [2.15, 4.45, 6.75]  # A, then B, A, B: pauses around these times
    windows = VoiceWindows(times, np.stack([(A, B)[int(np.searchsorted(changes, t)) % 2] for t in times]))
    pause = (4.3, 4.6)
    assert voice_change_in_pause(windows, [pause], 0.75, 0.55) is None  # both sides are A and B
    found = voice_change_in_pause(windows, [pause], 0.75, 0.55, near_seconds=2.5, near_threshold=0.7)
    assert found == pause
    # one voice throughout stays one turn
    same = VoiceWindows(times, np.stack([A] * len(times)))
    assert voice_change_in_pause(same, [pause], 0.75, 0.55, near_seconds=2.5, near_threshold=0.7) is None


def test_windows_of_two_voices_are_less_consistent_than_of_one() -> None:
    times = np.arange(6, dtype=np.float64)
    one_voice = VoiceWindows(times, np.stack([A, A, _unit(1.0, 0.15, 0.0), A, A, A]))
    two_voices = VoiceWindows(times, np.stack([A, B, A, B, A, B]))
    assert one_voice.consistency() > 0.99
    assert two_voices.consistency() < 0.8
