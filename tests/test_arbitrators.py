"""Encoder arbitrators: gates that skip encoder sub-blocks per frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import SHARED_DATA, needs_shared_data
from transcriber.whisper.arbitrators import (
    ArbitratorDimensions,
    Arbitrators,
    GatedAudioEncoder,
    OperatingPoint,
    arbitrators_for_budget,
)
from transcriber.whisper.recognizer import load_recognizer

REPO_ROOT = Path(__file__).resolve().parents[1]
JFK = SHARED_DATA / "utterances" / "jfk_whisper" / "jfk.flac"
# per shipped operating point: the WER bound on JFK + 5 scored utterances (measured: see README)
MAX_WER = {"p0.5": 0.15}


@pytest.fixture(scope="module")
def whisper():
    """tiny.en in float32 (gates are compared against exact outputs)."""
    return load_recognizer("tiny.en", int8=False).model


@pytest.fixture(scope="module")
def mel(whisper):
    from transcriber.whisper.audio_features import log_mel_spectrogram

    if JFK.is_file():
        audio, _ = sf.read(JFK, dtype="float32")
    else:  # the gates' arithmetic does not need speech
        audio = np.random.default_rng(0).normal(0, 0.1, 5 * 16000).astype(np.float32)
    features = log_mel_spectrogram(audio[: 6 * 16000], whisper.dims.n_mels)
    return features[None, :, : features.shape[-1] - features.shape[-1] % 2]


def _constant_gates(whisper, attention: float, mlp: float) -> Arbitrators:
    """Arbitrators whose logits are the same for every frame."""
    dims = ArbitratorDimensions(whisper.dims.n_audio_state, whisper.dims.n_audio_layer)
    arbitrators = Arbitrators(dims, OperatingPoint("constant", 0.0))
    with torch.no_grad():
        for group, logit in ((arbitrators.attention, attention), (arbitrators.mlp, mlp)):
            for arbitrator in group:
                arbitrator.logit.weight.zero_()
                arbitrator.logit.bias.fill_(logit)
                arbitrator.odd_frames.zero_()
    return arbitrators.eval()


@torch.inference_mode()
def test_without_arbitrators_the_output_is_the_plain_encoders(whisper, mel) -> None:
    gated = GatedAudioEncoder(whisper.encoder)
    assert torch.equal(gated(mel), whisper.encoder(mel))
    assert gated.gates.fraction_run() == 1.0
    assert gated.counter.last_flops == whisper.encoder.flops(mel.shape[-1] // 2)


@torch.inference_mode()
def test_gates_that_keep_every_frame_compute_the_same_encoder(whisper, mel) -> None:
    gated = GatedAudioEncoder(whisper.encoder, _constant_gates(whisper, 5.0, 5.0))
    torch.testing.assert_close(gated(mel), whisper.encoder(mel), atol=1e-4, rtol=1e-4)
    assert gated.gates.fraction_run() == 1.0


@torch.inference_mode()
def test_closed_gates_skip_the_work_and_leave_the_residual(whisper, mel) -> None:
    encoder = whisper.encoder
    gated = GatedAudioEncoder(encoder, _constant_gates(whisper, -5.0, 5.0))
    out = gated(mel)
    # attention skipped everywhere: each layer is x + MLP(x)
    x = encoder.embed(mel)
    for block in encoder.blocks:
        x = x + block.mlp(block.mlp_ln(x))
    torch.testing.assert_close(out, encoder.ln_post(x), atol=1e-4, rtol=1e-4)
    assert gated.gates.per_layer() == [(0.0, 1.0)] * len(encoder.blocks)
    assert gated.gates.fraction_run() == 0.5
    frames = mel.shape[-1] // 2
    assert gated.counter.last_flops < encoder.flops(frames)


def _training_module():
    spec = importlib.util.spec_from_file_location("train_arbitrators", REPO_ROOT / "training/train_arbitrators.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_arbitrators"] = module
    spec.loader.exec_module(module)
    return module


def test_training_gates_match_the_inference_gates(whisper, mel) -> None:
    """The straight-through forward used in training is the encoder that runs."""
    torch.manual_seed(0)
    dims = ArbitratorDimensions(whisper.dims.n_audio_state, whisper.dims.n_audio_layer)
    arbitrators = Arbitrators(dims).eval()
    with torch.no_grad():  # random gates: about half the frames of each sub-block run
        for arbitrator in [*arbitrators.attention, *arbitrators.mlp]:
            arbitrator.logit.bias.zero_()
            arbitrator.logit.weight.normal_(0, 1.0)
        trained, attention_probs, mlp_probs = _training_module().gated_forward(whisper.encoder, arbitrators, mel[0])
        gated = GatedAudioEncoder(whisper.encoder, arbitrators)
        out = gated(mel)
    torch.testing.assert_close(out, trained, atol=1e-4, rtol=1e-4)
    layers = zip(attention_probs, mlp_probs, strict=True)
    expected = [(float((p > 0.5).float().mean()), float((q > 0.5).float().mean())) for p, q in layers]
    np.testing.assert_allclose(gated.gates.per_layer(), expected)
    assert 0.1 < gated.gates.fraction_run() < 0.9


def test_budget_one_is_the_full_encoder_and_out_of_range_is_refused() -> None:
    assert arbitrators_for_budget("tiny.en", 1.0) is None
    with pytest.raises(ValueError):
        arbitrators_for_budget("tiny.en", 0.0)
    with pytest.raises(ValueError):
        arbitrators_for_budget("tiny.en", 1.5)


@needs_shared_data
def test_recognizer_switches_operating_points_between_windows() -> None:
    recognizer = load_recognizer("tiny.en")
    audio, _ = sf.read(JFK, dtype="float32")
    full = recognizer.transcribe(audio)
    recognizer.set_arbitrators(_constant_gates(recognizer.model, 5.0, 5.0))
    same = recognizer.transcribe(audio)
    assert same.text == full.text
    assert same.encoder_flops > full.encoder_flops  # the arbitrators cost a little
    recognizer.set_arbitrators(_constant_gates(recognizer.model, -5.0, -5.0))
    nothing = recognizer.transcribe(audio)
    assert nothing.encoder_flops < 0.2 * full.encoder_flops
    recognizer.set_arbitrators(None)
    assert recognizer.transcribe(audio).text == full.text


@torch.inference_mode()
def test_sliding_window_baseline_sees_the_whole_window_when_the_radius_covers_it(whisper, mel) -> None:
    from transcriber.whisper.local_attention import SlidingWindowEncoder

    frames = mel.shape[-1] // 2
    wide = SlidingWindowEncoder(whisper.encoder, radius=frames)
    wide_out = wide(mel)
    wide_flops = wide.counter.last_flops  # the encoders share one tally: read it before the next runs
    torch.testing.assert_close(wide_out, whisper.encoder(mel), atol=1e-4, rtol=1e-4)
    narrow = SlidingWindowEncoder(whisper.encoder, radius=25)
    out = narrow(mel)
    assert out.shape == (1, frames, whisper.dims.n_audio_state)
    assert narrow.counter.last_flops < wide_flops


@needs_shared_data
def test_shipped_operating_points_load_and_keep_what_they_recorded() -> None:
    """Each trained set in models/arbitrators keeps, on the JFK clip, the fraction of
    sub-blocks its JSON recorded when it was measured, and stays within a WER bound
    on JFK and five scored utterances (none of them trained on)."""
    from transcriber.evaluation.data import load_audio, load_utterances, scored_utterances
    from transcriber.evaluation.metrics import wer
    from transcriber.whisper.arbitrators import operating_points

    paths = operating_points("tiny.en")
    assert paths, "trained operating points ship in models/arbitrators"
    recognizer = load_recognizer("tiny.en")
    jfk_text = (
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    )
    clips = [(load_audio(JFK), jfk_text)]
    clips += [(load_audio(u.path), u.text) for u in scored_utterances(load_utterances(), 60)[:5]]
    for path in paths:
        arbitrators = Arbitrators.load(path)
        recognizer.set_arbitrators(arbitrators)
        gated = recognizer.model.encoder
        gated.gates.clear()
        recognizer.encode(clips[0][0])
        assert abs(gated.gates.fraction_run() - arbitrators.point.notes["jfk_blocks_run"]) < 0.005
        errors = wer([text for _, text in clips], [recognizer.transcribe(audio).text for audio, _ in clips])
        assert errors.rate < MAX_WER[arbitrators.point.name], (path.name, errors)
    recognizer.set_arbitrators(None)


def test_a_model_given_as_a_path_has_no_operating_points(tmp_path) -> None:
    from transcriber.whisper.arbitrators import NoOperatingPoint, operating_points

    assert operating_points(str(tmp_path / "my-model")) == []
    assert operating_points("base") == []
    with pytest.raises(NoOperatingPoint):
        arbitrators_for_budget(str(tmp_path / "my-model"), 0.5)
