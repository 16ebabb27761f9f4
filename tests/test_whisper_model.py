"""Whisper in torch from packaged CTranslate2 weights: reader, dimensions, int8, and
token-for-token agreement with ctranslate2 itself on real speech from ../shared/data."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from transcriber.whisper.audio_features import SAMPLE_RATE, log_mel_spectrogram
from transcriber.whisper.ctranslate2_format import load_variables
from transcriber.whisper.decoding import LONG_WORD_SECONDS, TimedWord, propose, shorten_long_words
from transcriber.whisper.loading import (
    ModelNotFoundError,
    ctranslate2_to_state_dict,
    load_whisper,
    quantize_int8,
    resolve_model,
)
from transcriber.whisper.model import ModelDimensions, Whisper
from transcriber.whisper.recognizer import load_recognizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MANIFEST = DATA / "utterances.jsonl"
needs_data = pytest.mark.skipif(
    not MANIFEST.is_file(),
    reason=f"real speech not found at {DATA} (it lies beside the checkout; absent in a user's clone)",
)
# JFK's "ask not" sentence and two LibriSpeech speakers
UTTERANCE_IDS = ("jfk", "1088-134315-0000", "2412-153948-0000")
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's full 30 s window
BASE_MODEL_BIN_BYTES = 145_217_532


# --- the CTranslate2 reader and model dimensions ---------------------------------------------


def test_reader_parses_tiny_en_model_bin() -> None:
    source = resolve_model("tiny.en")
    assert source.weight_files[0].name == "model.bin"
    variables = load_variables(source.weight_files)
    assert int(variables["encoder/num_heads"]) == 6
    assert int(variables["decoder/num_heads"]) == 6
    conv1 = variables["encoder/conv1/weight"]
    assert conv1.shape == (384, 80, 3) and conv1.dtype == np.float16  # the package ships float16
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    # the output projection is an alias of the token embedding: same data, no copy
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    assert all(np.isfinite(v.astype(np.float32)).all() for v in variables.values() if v.dtype.kind == "f")


def test_tiny_en_dimensions() -> None:
    dims, state = ctranslate2_to_state_dict(load_variables(resolve_model("tiny.en").weight_files))
    assert dims == ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=384,
        n_audio_head=6,
        n_audio_layer=4,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=384,
        n_text_head=6,
        n_text_layer=4,
    )
    model = Whisper(dims)
    model.load_state_dict(state, strict=True)  # every parameter mapped, nothing left over
    assert not model.is_multilingual
    # the key projections have no bias; their split of the fused CTranslate2 bias is dropped
    assert model.encoder.blocks[0].attn.key.bias is None


def test_base_dimensions_from_split_package() -> None:
    source = resolve_model("base")
    assert len(source.weight_files) == 2
    assert sum(path.stat().st_size for path in source.weight_files) == BASE_MODEL_BIN_BYTES
    model = load_whisper(source)
    dims = model.dims
    assert (dims.n_audio_layer, dims.n_text_layer) == (6, 6)
    assert (dims.n_audio_state, dims.n_text_state) == (512, 512)
    assert (dims.n_audio_head, dims.n_text_head) == (8, 8)
    assert dims.n_vocab == 51865 and model.is_multilingual
    assert model.alignment_heads, "alignment heads come from config.json"


# --- int8 dynamic quantization ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_int8_quantization_converts_every_linear() -> None:
    model = load_whisper(resolve_model("tiny.en"))
    n_linear = sum(1 for m in model.modules() if type(m) is torch.nn.Linear)
    quantized = quantize_int8(model)
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    converted = [m for m in quantized.modules() if isinstance(m, dynamic_linear)]
    assert len(converted) > 0
    # quantize_dynamic skips Linear subclasses silently: none may stay; +1 is the output projection
    assert len(converted) == n_linear + 1
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert converted[0].weight().dtype == torch.qint8
    assert quantized.alignment_heads == model.alignment_heads


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_recognizer_quantizes_by_default() -> None:
    recognizer = load_recognizer("tiny.en")
    dynamic_linear = torch.ao.nn.quantized.dynamic.Linear
    assert sum(1 for m in recognizer.model.modules() if isinstance(m, dynamic_linear)) > 0


# --- agreement with ctranslate2 on real speech -----------------------------------------------


def _utterance(utterance_id: str) -> np.ndarray:
    import soundfile

    rows = [json.loads(line) for line in MANIFEST.read_text().splitlines() if line.strip()]
    row = next((r for r in rows if r["id"] == utterance_id), None)
    if row is None:
        pytest.skip(f"utterance {utterance_id} is not in {MANIFEST}")
    audio, rate = soundfile.read(DATA / row["path"], dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    return audio


@pytest.fixture(scope="module")
def float_recognizer():
    return load_recognizer("tiny.en", int8=False)


@pytest.fixture(scope="module")
def ct2_tiny_en():
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 (dev extra) is the reference")
    model_dir = resolve_model("tiny.en").weight_files[0].parent
    return ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)


def _greedy_tokens(recognizer, features: torch.Tensor, prefix: list[int]) -> tuple[list[int], float]:
    """Greedy decoding without timestamps; returns the tokens and the smallest top-1/top-2 logit gap."""
    decoder = recognizer.model.decoder
    cache = decoder.new_cache(features)
    hidden, _ = decoder(torch.tensor([prefix]), cache)
    logits = decoder.logits(hidden[0, -1])
    tokens: list[int] = []
    smallest_gap = math.inf
    for step in range(recognizer.model.dims.n_text_ctx - len(prefix)):
        logits = logits.float().masked_fill(recognizer.suppress_mask, -math.inf)
        logits[recognizer.tokenizer.timestamp_begin :] = -math.inf  # <|notimestamps|> mode, as ctranslate2
        if step == 0:
            logits[recognizer.suppress_begin] = -math.inf
        top2 = logits.topk(2).values
        smallest_gap = min(smallest_gap, float(top2[0] - top2[1]))
        token = int(logits.argmax())
        if token == recognizer.tokenizer.eot:
            break
        tokens.append(token)
        hidden, _ = decoder(torch.tensor([[token]]), cache)
        logits = decoder.logits(hidden[0, -1])
    return tokens, smallest_gap


def test_suppression_matches_ctranslate2_config(float_recognizer) -> None:
    """ctranslate2's suppress_tokens=[-1] and suppress_blank read config.json: ours must too."""
    config = json.loads(resolve_model("tiny.en").config_file.read_text())
    suppressed = set(torch.nonzero(float_recognizer.suppress_mask).flatten().tolist())
    assert set(config["suppress_ids"]) <= suppressed
    assert float_recognizer.suppress_begin == config["suppress_ids_begin"]
    # beyond config.json we only mask special tokens that cannot follow <|notimestamps|> anyway
    tok = float_recognizer.tokenizer
    extra = suppressed - set(config["suppress_ids"])
    assert all(tok.eot < t < tok.timestamp_begin for t in extra)


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("utterance_id", UTTERANCE_IDS)
def test_greedy_tokens_equal_ctranslate2(float_recognizer, ct2_tiny_en, utterance_id: str) -> None:
    import ctranslate2

    audio = _utterance(utterance_id)[:WINDOW_SAMPLES]
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    window[: len(audio)] = audio
    mel = log_mel_spectrogram(window, float_recognizer.model.dims.n_mels)[:, :3000]
    assert mel.shape == (80, 3000)
    tok = float_recognizer.tokenizer
    prefix = [tok.sot, tok.no_timestamps]

    with torch.inference_mode():
        features = float_recognizer.model.encoder(mel[None])
        ours, smallest_gap = _greedy_tokens(float_recognizer, features, prefix)

    reference_features = ct2_tiny_en.encode(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy())), to_cpu=True
    )
    reference_encoded = np.array(reference_features)
    assert reference_encoded.shape == tuple(features.shape) == (1, 1500, 384)
    encoder_diff = float(np.abs(reference_encoded - features.numpy()).max())
    assert encoder_diff < 1e-3, f"encoder outputs differ by {encoder_diff:.2e}"

    result = ct2_tiny_en.generate(reference_features, [prefix], beam_size=1, suppress_blank=True, suppress_tokens=[-1])
    reference = result[0].sequences_ids[0]
    assert len(ours) > 5, "decoded (almost) nothing from real speech"
    assert ours == reference, (
        f"tokens differ from ctranslate2 (smallest top-2 logit gap on our path {smallest_gap:.3f}):\n"
        f"  ours: {tok.decode(ours)!r}\n  ct2:  {tok.decode(reference)!r}"
    )


def test_proposal_follows_the_draft_where_it_agrees_with_the_text() -> None:
    draft = [10, 11, 12, 13, 11, 14, 15]
    assert propose(draft, [], 3) == [10, 11, 12]
    assert propose(draft, [99, 12], 2) == [13, 11]  # one token of agreement is enough
    assert propose(draft, [13, 11], 3) == [14, 15]  # two tokens pick the second "11"
    assert propose(draft, [5, 11], 2) == [12, 13]  # one: the place nearest the text's position
    assert propose(draft, [99], 3) == [] and propose([], [10], 3) == [] and propose(draft, [10], 0) == []


@needs_data
@pytest.mark.slow
@pytest.mark.parametrize("utterance_id", UTTERANCE_IDS)
def test_draft_tokens_make_decoding_cheaper_not_different(float_recognizer, utterance_id: str) -> None:
    """Prompt-lookup decoding: a right draft takes fewer decoder calls, a wrong one
    costs calls but no accuracy; the tokens are the plain greedy ones either way (with
    float weights, where a call over several tokens computes each as a call over one)."""
    audio = _utterance(utterance_id)[:WINDOW_SAMPLES]
    calls = []
    hook = float_recognizer.model.decoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        plain = float_recognizer.transcribe(audio)
        plain_calls = len(calls)
        calls.clear()
        right = float_recognizer.transcribe(audio, draft=plain.tokens)
        right_calls = len(calls)
        wrong = float_recognizer.transcribe(audio, draft=[t + 1 for t in plain.tokens])
    finally:
        hook.remove()
    assert len(plain.tokens) > 10
    assert right.tokens == plain.tokens and wrong.tokens == plain.tokens
    assert [(w.text, w.start, w.end) for w in right.words] == [(w.text, w.start, w.end) for w in plain.words]
    assert right_calls < plain_calls / 2, (right_calls, plain_calls)


@needs_data
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_traced_decoder_layers_decode_as_the_eager_ones() -> None:
    """Greedy decoding runs a TorchScript copy of the decoder's layers: with the int8
    weights the engine uses, it gives the eager layers' tokens, word times and
    probabilities, with and without a draft (calls over one token and over several)."""
    recognizer = load_recognizer("tiny.en")
    audio = _utterance("1088-134315-0000")
    assert recognizer.decoder_layers is not None
    traced = recognizer.transcribe(audio)
    drafted = recognizer.transcribe(audio, draft=traced.tokens[:-3])
    recognizer.decoder_layers = None  # the decoder's own Python layers
    eager = recognizer.transcribe(audio)
    eager_drafted = recognizer.transcribe(audio, draft=traced.tokens[:-3])
    assert len(eager.tokens) > 10
    for fast, slow in ((traced, eager), (drafted, eager_drafted)):
        assert fast.tokens == slow.tokens
        assert [(w.text, w.start, w.end) for w in fast.words] == [(w.text, w.start, w.end) for w in slow.words]
        assert [w.probability for w in fast.words] == pytest.approx([w.probability for w in slow.words], abs=1e-4)
        assert fast.avg_logprob == pytest.approx(slow.avg_logprob, abs=1e-4)


# --- model resolution and openai .pt checkpoints ---------------------------------------------


@needs_data
def test_a_word_stretched_over_a_pause_keeps_its_loud_part() -> None:
    """The alignment can give a word all of a pause before it: the word is cut to the
    loudest stretch of its span, where the speech is."""
    speech = _utterance("jfk")
    audio = np.concatenate([np.zeros(6 * SAMPLE_RATE, dtype=np.float32), speech])
    onset = 6.0 + float(np.argmax(np.abs(speech) > 0.1 * np.abs(speech).max())) / SAMPLE_RATE
    after = [
        TimedWord(text, onset + 0.3 * i, onset + 0.3 * (i + 1), 0.9)
        for i, text in enumerate("so, my fellow".split(), 1)
    ]
    words = [TimedWord("And", 0.2, onset + 0.3, 0.9), *after]
    first, *rest = shorten_long_words(words, audio)
    assert first.end - first.start == pytest.approx(LONG_WORD_SECONDS)
    assert first.end == pytest.approx(words[0].end, abs=0.02)  # the part with the speech, not the silence
    assert rest == after
    assert shorten_long_words(after, audio) == after  # words of ordinary length stay


def test_unknown_model_name_is_explained() -> None:
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model("nonexistent")
    message = str(error.value)
    assert "nonexistent" in message
    for hint in ("tiny.en", "base", "CTranslate2 folder", ".pt"):
        assert hint in message


def test_model_folder_resolves_like_the_package_name() -> None:
    packaged = resolve_model("tiny.en")
    folder = resolve_model(str(packaged.weight_files[0].parent))
    assert folder.weight_files == packaged.weight_files
    assert folder.tokenizer_file == packaged.tokenizer_file
    assert folder.config_file == packaged.config_file


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_pt_checkpoint_round_trip(tmp_path: Path, dtype: torch.dtype) -> None:
    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=12,
        n_audio_state=32,
        n_audio_head=4,
        n_audio_layer=2,
        n_vocab=300,
        n_text_ctx=16,
        n_text_state=32,
        n_text_head=4,
        n_text_layer=2,
    )
    torch.manual_seed(0)
    original = Whisper(dims)
    with torch.no_grad():
        for tensor in [*original.parameters(), *original.buffers()]:
            tensor.normal_()
    state = {name: t.to(dtype) for name, t in original.state_dict().items()}
    path = tmp_path / "tiny-random.pt"
    torch.save({"dims": asdict(dims), "model_state_dict": state}, path)  # openai-whisper's layout

    source = resolve_model(str(path))
    assert source.weight_files == (path,) and source.tokenizer_file is None
    loaded = load_whisper(source)
    assert loaded.dims == dims
    loaded_state = loaded.state_dict()
    assert loaded_state.keys() == state.keys()
    for name, tensor in state.items():
        assert loaded_state[name].dtype == torch.float32, name
        torch.testing.assert_close(loaded_state[name], tensor.float(), rtol=0, atol=0, msg=name)
    # no config.json: openai-whisper's fallback, every head of the upper half of the decoder
    assert loaded.alignment_heads == [(1, h) for h in range(4)]
    mel = torch.randn(1, 80, 2 * dims.n_audio_ctx)
    with torch.inference_mode():
        assert loaded.encoder(mel).shape == (1, dims.n_audio_ctx, dims.n_audio_state)
