"""Sliding-window self-attention in the encoder: the baseline the arbitrators are measured against.

Each frame attends only to frames at most ``radius`` positions away. The work is
really saved: frames go in blocks of ``radius`` queries, and each block's scores
are computed against its own keys and the ``radius`` keys on either side, not
against the whole window. Everything else (convolutions, MLPs, projections) is
the plain encoder's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transcriber.whisper.model import AudioEncoder, ResidualAttentionBlock


class SlidingWindowEncoder(nn.Module):
    def __init__(self, encoder: AudioEncoder, radius: int):
        super().__init__()
        if radius < 1:
            raise ValueError("the attention radius must be at least one frame")
        self.encoder = encoder
        self.radius = radius
        self.counter = encoder.counter

    def forward(self, mel: Tensor) -> Tensor:
        x = self.encoder.embed(mel)
        frames, d = x.shape[1], x.shape[2]
        for block in self.encoder.blocks:
            x = x + _local_attention(block, block.attn_ln(x), self.radius)
            x = x + block.mlp(block.mlp_ln(x))
        n_layer = len(self.encoder.blocks)
        self.counter.add(2 * n_layer * x.shape[0] * frames, 2 * n_layer * x.shape[0] * frames)
        self.counter.last_flops = x.shape[0] * self.flops(frames, d)
        return self.encoder.ln_post(x)

    def flops(self, frames: int, d: int) -> float:
        """The plain encoder's FLOPs with each block's scores against the keys it reaches."""
        full_scores = 2 * 2 * frames * frames * d
        local_scores = sum(
            2 * 2 * (end - start) * (min(frames, end + self.radius) - max(0, start - self.radius)) * d
            for start, end in _blocks(frames, self.radius)
        )
        return self.encoder.flops(frames) - len(self.encoder.blocks) * (full_scores - local_scores)


def _blocks(frames: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(frames, start + size)) for start in range(0, frames, size)]


def _local_attention(block: ResidualAttentionBlock, h: Tensor, radius: int) -> Tensor:
    """Self-attention of ``h`` (batch, frames, state) where frame i sees frames j with
    |i - j| <= radius: block by block, each against the keys it can reach."""
    attn = block.attn
    q = attn.split_heads(attn.query(h))
    k = attn.split_heads(attn.key(h))
    v = attn.split_heads(attn.value(h))
    frames = h.shape[1]
    outputs = []
    positions = torch.arange(frames)
    for start, end in _blocks(frames, radius):
        low, high = max(0, start - radius), min(frames, end + radius)
        near = (positions[start:end, None] - positions[None, low:high]).abs() <= radius
        window = (q[:, :, start:end], k[:, :, low:high], v[:, :, low:high])
        outputs.append(F.scaled_dot_product_attention(*window, attn_mask=near))
    out = torch.cat(outputs, dim=2)
    batch, _, length, _ = out.shape
    return attn.out(out.transpose(1, 2).reshape(batch, length, -1))
