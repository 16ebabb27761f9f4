"""Speaker encoder and clustering: synthetic checks, then real speech from ../shared/data."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from transcriber.engine.clustering import DEFAULT_THRESHOLD, OnlineSpeakerClustering, agglomerate
from transcriber.engine.speaker_encoder import SAMPLE_RATE, mel_filterbank, mel_spectrogram

DATA = Path(__file__).parents[1].parent / "shared" / "data"
HAVE_WEIGHTS = importlib.util.find_spec("resemblyzer") is not None
NO_WEIGHTS = "resemblyzer (its pretrained.pt) is not installed"
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=NO_WEIGHTS)
needs_data = pytest.mark.skipif(
    not (DATA / "speaker_only.jsonl").is_file(), reason=f"real speech not found at {DATA} (a user's clone)"
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- features and clustering on synthetic input: no weights, no data ---


def test_mel_filterbank_shape_and_slaney_norm() -> None:
    filters = mel_filterbank()
    assert filters.shape == (40, 201)
    assert (filters >= 0).all() and (filters.sum(axis=1) > 0).all()
    # Slaney norm: peak height 2 / bandwidth (Hz), so narrow low bands have the tallest peaks.
    assert filters[0].max() > filters[-1].max()


def test_mel_spectrogram_frames_and_tone_band() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    mel = mel_spectrogram(np.sin(2 * np.pi * 440 * t).astype(np.float32))
    assert mel.shape == (1 + SAMPLE_RATE // 160, 40)  # centred frames, as librosa
    assert 0 < int(mel[50].argmax()) < 15  # 440 Hz lies in a low band


def _three_directions(rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.normal(size=(3, 256)))


def test_online_ids_follow_first_appearance() -> None:
    rng = np.random.default_rng(0)
    centres = _three_directions(rng)
    truth = [2, 2, 0, 1, 0, 2, 1]
    clustering = OnlineSpeakerClustering(threshold=0.7)
    ids = [clustering.assign(centres[k] + 0.02 * rng.normal(size=256), 1.0) for k in truth]
    assert ids == ["S1", "S1", "S2", "S3", "S2", "S1", "S3"]


def test_max_speakers_caps_new_ids() -> None:
    rng = np.random.default_rng(1)
    clustering = OnlineSpeakerClustering(threshold=0.7, max_speakers=2)
    ids = [clustering.assign(v, 1.0) for v in _three_directions(rng)]
    assert ids[:2] == ["S1", "S2"] and ids[2] in ("S1", "S2")


def test_refine_keeps_online_ids_and_fixes_a_split() -> None:
    rng = np.random.default_rng(2)
    a, b = _three_directions(rng)[:2]
    embeddings = [a, a, b, _unit(a + 0.3 * b), b, a]
    clustering = OnlineSpeakerClustering(threshold=0.7)
    online = [clustering.assign(e, 2.0) for e in embeddings]
    assert online == ["S1", "S1", "S2", "S1", "S2", "S1"]
    refined = clustering.refine(embeddings, [2.0] * 6)
    assert refined == online  # nothing moved, so no id changed
    # Given live labels that split speaker a in two, refine merges them under the bigger id.
    split = ["S1", "S1", "S2", "S3", "S2", "S3"]
    merged = clustering.refine([a, a, b, a, b, a], [3, 3, 1, 1, 1, 1], labels=split)
    assert merged == ["S1", "S1", "S2", "S1", "S2", "S1"]


def test_agglomerate_fixed_count() -> None:
    rng = np.random.default_rng(3)
    centres = _three_directions(rng)
    x = np.stack([centres[k] + 0.05 * rng.normal(size=256) for k in [0, 1, 2, 0, 1, 2]])
    assert list(agglomerate(x, np.ones(6), threshold=0.5)) == [0, 1, 2, 0, 1, 2]
    assert len(set(agglomerate(x, np.ones(6), threshold=0.5, fixed_speakers=2))) == 2
    assert len(set(agglomerate(x, np.ones(6), threshold=0.5, fixed_speakers=10))) == 6


def test_agglomerate_cannot_link_keeps_a_voice_change_apart() -> None:
    rng = np.random.default_rng(4)
    centre = _unit(rng.normal(size=256))
    # two rows a little apart: alike enough to merge, unless a voice change was detected between them
    x = np.stack([_unit(centre + 0.5 * rng.normal(size=256) / 16) for _ in range(2)])
    assert len(set(agglomerate(x, np.ones(2), threshold=0.5))) == 1
    assert list(agglomerate(x, np.ones(2), threshold=0.5, cannot_link=[(0, 1)])) == [0, 1]
    # a fixed count cannot force them together either
    assert list(agglomerate(x, np.ones(2), threshold=0.5, fixed_speakers=1, cannot_link=[(0, 1)])) == [0, 1]


def test_agglomerate_folds_a_speaker_heard_briefly_into_the_closest() -> None:
    rng = np.random.default_rng(5)
    a, b = _three_directions(rng)[:2]
    brief = _unit(a + 0.9 * rng.normal(size=256) / 16)  # a noisy embedding of a 1 s turn of speaker a
    x = np.stack([a, b, a, brief])
    similarity = float(brief @ a)
    assert 0.5 < similarity < 0.9
    weights = np.array([10.0, 10.0, 10.0, 1.0])
    alone = agglomerate(x, weights, threshold=(1 + similarity) / 2)  # too unlike a for the threshold
    assert alone[3] not in alone[:3]
    folded = agglomerate(
        x, weights, threshold=(1 + similarity) / 2, min_cluster_weight=3.0, small_cluster_threshold=0.5
    )
    assert folded[3] == folded[0] and folded[1] != folded[0]
    # a long turn is trusted: it stays a speaker of its own
    long_turn = agglomerate(
        x,
        np.array([10.0, 10.0, 10.0, 5.0]),
        threshold=(1 + similarity) / 2,
        min_cluster_weight=3.0,
        small_cluster_threshold=0.5,
    )
    assert long_turn[3] not in long_turn[:3]


# --- the real model ---


@pytest.fixture(scope="module")
def encoder():
    if not HAVE_WEIGHTS:
        pytest.skip(NO_WEIGHTS)
    from transcriber.engine.speaker_encoder import SpeakerEncoder

    # One thread: the LSTM's small per-step matmuls gain nothing from two, and on a busy
    # 2-core machine spinning OpenMP threads made the suite 3x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield SpeakerEncoder()
    torch.set_num_threads(threads)


@needs_weights
def test_embedding_shapes(encoder) -> None:
    rng = np.random.default_rng(4)
    audio = (0.05 * rng.normal(size=int(3.2 * SAMPLE_RATE))).astype(np.float32)
    emb = encoder.embed(audio)
    assert emb.shape == (256,) and emb.dtype == np.float32
    assert np.isclose(np.linalg.norm(emb), 1.0, atol=1e-5) and (emb >= 0).all()
    assert encoder.embed(audio[: SAMPLE_RATE // 2]).shape == (256,)
    times, windows = encoder.embed_windows(audio)
    assert windows.shape == (len(times), 256)
    assert np.allclose(times[:3], [0.75, 1.5, 2.25]) and np.isclose(times[-1], 3.2 - 0.75)
    assert 4e8 < encoder.flops_per_second < 7e8


@pytest.fixture(scope="module")
def speaker_only(encoder):
    """Whole-utterance embeddings of speaker_only (5 LibriSpeech speakers x 10), with speakers, seconds."""
    if not (DATA / "speaker_only.jsonl").is_file():
        pytest.skip(f"real speech not found at {DATA} (a user's clone)")
    import soundfile as sf

    rows = [json.loads(line) for line in (DATA / "speaker_only.jsonl").read_text().splitlines() if line]
    embeddings, speakers, seconds = [], [], []
    for row in rows:
        audio, rate = sf.read(DATA / row["path"], dtype="float32")
        assert rate == SAMPLE_RATE
        embeddings.append(encoder.embed(audio))
        speakers.append(row["speaker"])
        seconds.append(len(audio) / rate)
    return np.stack(embeddings), np.array(speakers), np.array(seconds)


def _pair_scores(embeddings: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    upper = np.triu_indices(len(embeddings), 1)
    return (embeddings @ embeddings.T)[upper], (speakers[:, None] == speakers[None, :])[upper]


@needs_data
@needs_weights
@pytest.mark.slow
def test_same_speaker_is_closer(speaker_only) -> None:
    scores, same = _pair_scores(*speaker_only[:2])
    # Measured 0.88 vs 0.56.
    assert scores[same].mean() - scores[~same].mean() > 0.2


@needs_data
@needs_weights
@pytest.mark.slow
def test_eer_whole_utterances(speaker_only) -> None:
    scores, same = _pair_scores(*speaker_only[:2])
    errors = [max(np.mean(scores[~same] >= t), np.mean(scores[same] < t)) for t in np.unique(scores)]
    assert min(errors) < 0.05  # measured 0 %


@needs_data
@needs_weights
@pytest.mark.slow
def test_cluster_three_speakers(speaker_only) -> None:
    embeddings, speakers, seconds = speaker_only
    chosen = np.unique(speakers)[:3]
    picks = [i for s in chosen for i in np.flatnonzero(speakers == s)[:4]]
    order = np.random.default_rng(5).permutation(picks)  # interleave the speakers, like turns
    clustering = OnlineSpeakerClustering(DEFAULT_THRESHOLD)
    online = [clustering.assign(embeddings[i], seconds[i]) for i in order]
    # The live pass may merge two like voices (here LS2033 and LS3005, 0.63 alike on
    # average): it is what refine is for, so only its id scheme is checked.
    assert online[0] == "S1" and set(online) <= {"S1", "S2", "S3"}
    refined = clustering.refine([embeddings[i] for i in order], [seconds[i] for i in order])
    truth = speakers[order]
    assert len(set(refined)) == 3
    majority = sum(Counter(truth[np.array(refined) == c]).most_common(1)[0][1] for c in set(refined))
    assert majority / len(refined) >= 0.9


@needs_data
@needs_weights
@pytest.mark.slow
def test_refine_fixed_two_speakers(speaker_only) -> None:
    embeddings, speakers, seconds = speaker_only
    picks = [i for s in np.unique(speakers)[:3] for i in np.flatnonzero(speakers == s)[:3]]
    clustering = OnlineSpeakerClustering(DEFAULT_THRESHOLD, fixed_speakers=2)
    for i in picks:
        clustering.assign(embeddings[i], seconds[i])
    refined = clustering.refine([embeddings[i] for i in picks], [seconds[i] for i in picks])
    assert len(set(refined)) == 2 and set(refined) <= {"S1", "S2"}
