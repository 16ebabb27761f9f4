"""Arbitrators: per-frame gates that decide which encoder sub-blocks run.

After Xie et al., "Compute cost amortized Transformer for streaming ASR"
(Interspeech 2022). Each encoder layer has two sub-blocks on residual paths,
self-attention and the MLP. A small network per sub-block looks at the frame's
layer-normed input (and how it changed since the frame before) and says whether
the sub-block runs for that frame. The work of a skipped frame is not done: the
MLP runs on the kept frames only, and self-attention computes queries, scores and
the output projection only for them (keys and values still come from every frame,
which the kept queries may attend to).

What a skipped frame adds differs from the paper, which trains the whole model
with its gates so that a skipped sub-block may add nothing. Whisper here stays
frozen, and for it nothing is far from harmless: measured on 40 training windows
(teacher-forced tokens), skipping every sub-block on the 1 s of padding alone
drops top-1 agreement with the full model to 18 %. A skipped frame therefore
reuses the output of the nearest kept frame before it (20 ms frames change
slowly): skipping every other frame in every sub-block that way keeps 95 %
agreement (KL 0.05). The gates learn which frames can borrow their neighbour's.

``GatedAudioEncoder`` wraps a plain ``AudioEncoder``: with no arbitrators it is
that encoder, output for output; with arbitrators it skips what they say.
Training (straight-through gates over the same arithmetic) lives in
``training/train_arbitrators.py``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transcriber.whisper.model import AudioEncoder, ResidualAttentionBlock

SUB_BLOCKS = ("attention", "mlp")


@dataclass(frozen=True)
class ArbitratorDimensions:
    n_state: int
    n_layer: int
    n_hidden: int = 32


@dataclass
class OperatingPoint:
    """What a trained set of arbitrators was trained for and measured at."""

    name: str
    penalty: float  # weight of the compute term in the training loss
    blocks_run: float = 1.0  # measured fraction of sub-block evaluations run
    flops_fraction: float = 1.0  # measured fraction of encoder FLOPs
    notes: dict[str, float | str] = field(default_factory=dict)


class Arbitrator(nn.Module):
    """Gate logits, one per frame, from the sub-block's layer-normed input ``h``
    (..., frames, state) and its change since the frame before."""

    def __init__(self, n_state: int, n_hidden: int):
        super().__init__()
        self.hidden = nn.Linear(2 * n_state, n_hidden)
        self.logit = nn.Linear(n_hidden, 1)
        # a learned offset for odd frames: training starts from every other frame running
        # (then each borrows from the frame just before it, the cheapest good policy
        # measured), and moves from there
        self.odd_frames = nn.Parameter(torch.tensor(-6.0))
        nn.init.constant_(self.logit.bias, 3.0)

    def forward(self, h: Tensor) -> Tensor:
        change = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., 1:, :] - h[..., :-1, :]], dim=-2)
        odd = (torch.arange(h.shape[-2], device=h.device) % 2).to(h.dtype)
        return self.logit(F.gelu(self.hidden(torch.cat([h, change], dim=-1)))).squeeze(-1) + self.odd_frames * odd


def borrowed_from(keep: Tensor) -> Tensor:
    """For each frame (``keep``: bool over frames), the index among the kept frames of
    the output it uses: its own if kept, else the latest kept frame's before it (the
    first kept frame's for frames before that)."""
    return (torch.cumsum(keep.long(), dim=-1) - 1).clamp(min=0)


class Arbitrators(nn.Module):
    """One arbitrator per sub-block of every encoder layer."""

    def __init__(self, dims: ArbitratorDimensions, point: OperatingPoint | None = None):
        super().__init__()
        self.dims = dims
        self.point = point or OperatingPoint("untrained", 0.0)
        self.attention = nn.ModuleList([Arbitrator(dims.n_state, dims.n_hidden) for _ in range(dims.n_layer)])
        self.mlp = nn.ModuleList([Arbitrator(dims.n_state, dims.n_hidden) for _ in range(dims.n_layer)])

    def flops_per_frame(self) -> float:
        d, h = self.dims.n_state, self.dims.n_hidden
        return 2.0 * (2 * d * h + h) * 2 * self.dims.n_layer

    def save(self, path: Path | str) -> None:
        """Weights as a plain tensor dict (``torch.load(weights_only=True)``) and a JSON
        file beside them with the dimensions and the operating point."""
        path = Path(path)
        torch.save(self.state_dict(), path)
        meta = {"dims": asdict(self.dims), "point": asdict(self.point)}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> Arbitrators:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        arbitrators = cls(ArbitratorDimensions(**meta["dims"]), OperatingPoint(**meta["point"]))
        arbitrators.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return arbitrators.eval()


def read_point(path: Path) -> OperatingPoint:
    """The operating point a weights file was measured at, from the JSON beside it
    (without loading the weights)."""
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return OperatingPoint(**meta["point"])


def models_dir() -> Path:
    """Where the project's trained heads are: ``TRANSCRIBER_MODELS_DIR``, else the
    repository's ``models/`` (the package is installed editable from the checkout)."""
    override = os.environ.get("TRANSCRIBER_MODELS_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "models"


def operating_points(model: str) -> list[Path]:
    """Trained arbitrator sets for ``model`` (``models/arbitrators/<model>-*.pt``),
    most compute first."""
    folder = models_dir() / "arbitrators"
    if not folder.is_dir() or Path(model).name != model or "*" in model:
        return []  # a model given as a path has no trained sets here
    paths = sorted(folder.glob(f"{model}-*.pt"))
    return sorted(paths, key=lambda path: read_point(path).flops_fraction, reverse=True)


class NoOperatingPoint(LookupError):
    pass


def arbitrators_for_budget(model: str, budget: float) -> Arbitrators | None:
    """The trained set that runs the most encoder compute within ``budget`` (the
    fraction of the full encoder's FLOPs, as measured when it was trained); None,
    the full encoder, at a budget of 1."""
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"compute budget must be in (0, 1], not {budget}")
    if budget >= 1.0:
        return None
    points = operating_points(model)
    if not points:
        raise NoOperatingPoint(f"no arbitrators trained for model {model!r} in {models_dir() / 'arbitrators'}")
    within = [path for path in points if read_point(path).flops_fraction <= budget]
    return Arbitrators.load(within[0] if within else points[-1])  # below every point: the cheapest


DEFAULT_POINTS: dict[str, str] = {}  # model -> the operating point name used unless a budget is given


def default_arbitrators(model: str) -> Arbitrators | None:
    """The operating point a model runs at by default (None: the full encoder)."""
    name = DEFAULT_POINTS.get(model)
    if name is None:
        return None
    for path in operating_points(model):
        if read_point(path).name == name:
            return Arbitrators.load(path)
    return None


@dataclass
class GateCounts(threading.local):
    """Sub-block evaluations (per frame) offered and run, per layer, since the last
    take; per thread, as ``SubBlockCounter``."""

    n_layer: int
    offered: list[int] = field(default_factory=list)  # frames offered to each layer
    attention_run: list[int] = field(default_factory=list)
    mlp_run: list[int] = field(default_factory=list)
    flops: float = 0.0

    def __post_init__(self) -> None:
        self.clear()

    def __reduce__(self) -> tuple[type, tuple]:
        return type(self), (self.n_layer,)  # a copy counts afresh

    def clear(self) -> None:
        self.offered = [0] * self.n_layer
        self.attention_run = [0] * self.n_layer
        self.mlp_run = [0] * self.n_layer
        self.flops = 0.0

    def fraction_run(self) -> float:
        offered = 2 * sum(self.offered)
        return (sum(self.attention_run) + sum(self.mlp_run)) / offered if offered else 1.0

    def per_layer(self) -> list[tuple[float, float]]:
        """(attention, MLP) fraction of frames run in each layer."""
        counts = zip(self.attention_run, self.mlp_run, self.offered, strict=True)
        return [(a / o, m / o) if o else (1.0, 1.0) for a, m, o in counts]


class GatedAudioEncoder(nn.Module):
    """An ``AudioEncoder`` whose sub-blocks run only on the frames the arbitrators keep."""

    def __init__(self, encoder: AudioEncoder, arbitrators: Arbitrators | None = None):
        super().__init__()
        self.encoder = encoder
        self.arbitrators = arbitrators
        self.counter = encoder.counter  # the plain encoder's count, read by the engine
        self.gates = GateCounts(len(encoder.blocks))

    def set_arbitrators(self, arbitrators: Arbitrators | None) -> None:
        """Switch operating points between two windows; None runs every sub-block."""
        self.arbitrators = arbitrators

    def forward(self, mel: Tensor) -> Tensor:
        arbitrators = self.arbitrators  # once: another thread may switch operating points
        if arbitrators is None:
            out = self.encoder(mel)
            positions = out.shape[0] * out.shape[1]
            for layer in range(len(self.encoder.blocks)):
                self._count(layer, positions, positions, positions)
            self.gates.flops += self.counter.last_flops
            return out
        if mel.shape[0] != 1:
            raise ValueError("the gated encoder skips frames of one window at a time (batch 1)")
        x = self.encoder.embed(mel)[0]  # (frames, state)
        frames = x.shape[0]
        d = x.shape[1]
        # the convolutions always run; the blocks add what the gates let through
        flops = self.encoder.flops(frames) - len(self.encoder.blocks) * 2 * frames * (12 * d * d + 2 * frames * d)
        flops += arbitrators.flops_per_frame() * frames
        run = 0
        for layer, block in enumerate(self.encoder.blocks):
            h = block.attn_ln(x)
            keep_attention = arbitrators.attention[layer](h) > 0
            x, attention_flops = _attention_on(block, x, h, keep_attention)
            h = block.mlp_ln(x)
            keep_mlp = arbitrators.mlp[layer](h) > 0
            x, mlp_flops = _mlp_on(block, x, h, keep_mlp)
            flops += attention_flops + mlp_flops
            n_attention, n_mlp = int(keep_attention.sum()), int(keep_mlp.sum())
            self._count(layer, frames, n_attention, n_mlp)
            run += n_attention + n_mlp
        self.counter.add(run, 2 * frames * len(self.encoder.blocks))
        self.counter.last_flops = flops
        self.gates.flops += flops
        return self.encoder.ln_post(x)[None]

    def _count(self, layer: int, offered: int, attention: int, mlp: int) -> None:
        self.gates.offered[layer] += offered
        self.gates.attention_run[layer] += attention
        self.gates.mlp_run[layer] += mlp


def _attention_on(block: ResidualAttentionBlock, x: Tensor, h: Tensor, keep: Tensor) -> tuple[Tensor, float]:
    """Self-attention run for the kept frames of ``x`` (frames, state), every frame as
    key (``h`` is ``x`` layer-normed); skipped frames borrow a kept neighbour's output."""
    kept = keep.nonzero().squeeze(-1)
    if kept.numel() == 0:
        return x, 0.0
    attn = block.attn
    q = attn.split_heads(attn.query(h[kept][None]))
    k = attn.split_heads(attn.key(h[None]))
    v = attn.split_heads(attn.value(h[None]))
    out, _ = attn.attend(q, k, v, want_weights=False)
    x = x + attn.out(out)[0][borrowed_from(keep)]
    frames, d = x.shape
    n = kept.numel()
    return x, 2.0 * (2 * frames * d * d + 2 * n * d * d + 2 * n * frames * d)


def _mlp_on(block: ResidualAttentionBlock, x: Tensor, h: Tensor, keep: Tensor) -> tuple[Tensor, float]:
    kept = keep.nonzero().squeeze(-1)
    if kept.numel() == 0:
        return x, 0.0
    x = x + block.mlp(h[kept])[borrowed_from(keep)]
    d = x.shape[1]
    return x, 2.0 * 8 * kept.numel() * d * d
