import numpy as np

from transcriber.engine.quiet import SAMPLE_RATE, quietest_moment


def test_quietest_moment_finds_the_gap_between_two_sounds() -> None:
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 3 * SAMPLE_RATE).astype(np.float32)
    audio[int(1.6 * SAMPLE_RATE) : int(1.8 * SAMPLE_RATE)] *= 0.01  # a 200 ms pause
    # the audio starts 10 s into the stream; search [11.0, 12.5]
    moment = quietest_moment(audio, 10.0, 11.0, 12.5)
    assert 11.6 < moment < 11.8


def test_quietest_moment_falls_back_to_start_on_a_too_short_stretch() -> None:
    audio = np.ones(SAMPLE_RATE, dtype=np.float32)
    assert quietest_moment(audio, 0.0, 0.5, 0.55) == 0.5
    assert quietest_moment(audio, 0.0, 2.0, 3.0) == 2.0  # outside the audio
