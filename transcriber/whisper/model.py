"""Whisper in plain torch, laid out like openai-whisper's ``model.py``.

Module and parameter names match openai-whisper checkpoints, so a ``.pt``
checkpoint loads with ``load_state_dict``. Two differences matter for
streaming: the encoder accepts a shorter audio context than 30 s (it slices the
positional embedding, as whisper.cpp's ``audio_ctx`` does), and the decoder
keeps an explicit key/value cache so that greedy decoding costs one token's
work per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelDimensions:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def split_heads(self, x: Tensor) -> Tensor:
        batch, length, state = x.shape
        return x.view(batch, length, self.n_head, state // self.n_head).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, causal: bool, want_weights: bool) -> tuple[Tensor, Tensor | None]:
        """Heads-first q, k, v -> (merged output, attention weights if asked)."""
        if want_weights:
            scale = q.shape[-1] ** -0.5
            scores = (q @ k.transpose(-1, -2)) * scale
            if causal:
                n_q, n_k = q.shape[-2], k.shape[-2]
                mask = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = scores.softmax(dim=-1)
            out = weights @ v
        else:
            # causal only matters when several queries see the cache's tail
            is_causal = causal and q.shape[-2] > 1 and q.shape[-2] == k.shape[-2]
            if causal and q.shape[-2] > 1 and not is_causal:
                n_q, n_k = q.shape[-2], k.shape[-2]
                mask = torch.ones(n_q, n_k, dtype=torch.bool).tril(n_k - n_q)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
            weights = None
        batch, _, length, _ = out.shape
        return out.transpose(1, 2).reshape(batch, length, -1), weights


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = nn.LayerNorm(n_state) if cross_attention else None
        n_mlp = n_state * 4
        self.mlp = nn.Sequential(nn.Linear(n_state, n_mlp), nn.GELU(), nn.Linear(n_mlp, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def self_attention(self, h: Tensor) -> Tensor:
        """Bidirectional self-attention of ``h`` (the layer-normed input), projected:
        what the encoder block adds to its residual stream."""
        attn = self.attn
        out, _ = attn.attend(
            attn.split_heads(attn.query(h)),
            attn.split_heads(attn.key(h)),
            attn.split_heads(attn.value(h)),
            causal=False,
            want_weights=False,
        )
        return attn.out(out)

    def forward(self, x: Tensor) -> Tensor:
        """Encoder block: bidirectional self-attention, then the MLP."""
        x = x + self.self_attention(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(n_ctx, n_state))
        self.blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        self.ln_post = nn.LayerNorm(n_state)
        self.counter = SubBlockCounter()
        self.last_flops = 0.0  # of the latest forward: encoders that skip work report less

    def flops(self, positions: int) -> float:
        """Multiply-adds x 2 of a forward over ``positions`` frames (one window)."""
        d, n_mels = self.conv2.out_channels, self.conv1.in_channels
        convs = 2 * positions * (n_mels * 3 * d + d * 3 * d)
        per_layer = 2 * positions * (12 * d * d + 2 * positions * d)
        return float(convs + len(self.blocks) * per_layer)

    def embed(self, mel: Tensor) -> Tensor:
        """mel: (batch, n_mels, frames) with frames <= 3000 and even -> the first block's
        input, (batch, frames/2, state)."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(f"audio context {x.shape[1]} exceeds {self.positional_embedding.shape[0]}")
        return x + self.positional_embedding[: x.shape[1]]

    def forward(self, mel: Tensor) -> Tensor:
        """mel: (batch, n_mels, frames) with frames <= 3000 and even -> (batch, frames/2, state)."""
        x = self.embed(mel)
        for block in self.blocks:
            x = block(x)
        sub_blocks = 2 * len(self.blocks) * x.shape[0] * x.shape[1]
        self.counter.add(sub_blocks, sub_blocks)
        self.last_flops = x.shape[0] * self.flops(x.shape[1])
        return self.ln_post(x)


@dataclass
class SubBlockCounter:
    """Counts encoder sub-block evaluations (self-attention and MLP, per frame):
    how many were offered and how many actually ran. Every one runs in this
    encoder; one that skips frames reports fewer."""

    run: int = 0
    offered: int = 0

    def add(self, run: int, offered: int) -> None:
        self.run += run
        self.offered += offered

    def take(self) -> tuple[int, int]:
        """The counts so far, and start again from zero."""
        counts = (self.run, self.offered)
        self.run = self.offered = 0
        return counts


@dataclass
class DecoderCache:
    """Keys and values per decoder layer: self-attention grows, cross-attention is fixed."""

    self_keys: list[Tensor] = field(default_factory=list)
    self_values: list[Tensor] = field(default_factory=list)
    cross_keys: list[Tensor] = field(default_factory=list)
    cross_values: list[Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.self_keys else self.self_keys[0].shape[-2]

    def fresh(self) -> DecoderCache:
        """A cache for another text over the same audio: the cross-attention's keys and
        values are shared, the self-attention starts empty."""
        return DecoderCache(cross_keys=self.cross_keys, cross_values=self.cross_values)

    def truncate(self, length: int) -> None:
        """Forget the positions from ``length`` on (tokens that were proposed and rejected)."""
        self.self_keys = [k[..., :length, :] for k in self.self_keys]
        self.self_values = [v[..., :length, :] for v in self.self_values]


class TextDecoder(nn.Module):
    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, n_state)
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks = nn.ModuleList(
            [ResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)]
        )
        self.ln = nn.LayerNorm(n_state)
        self.output_projection: nn.Module | None = None

    def new_cache(self, audio_features: Tensor) -> DecoderCache:
        cache = DecoderCache()
        for block in self.blocks:
            cross = block.cross_attn
            cache.cross_keys.append(cross.split_heads(cross.key(audio_features)))
            cache.cross_values.append(cross.split_heads(cross.value(audio_features)))
        return cache

    def logits(self, hidden: Tensor) -> Tensor:
        """Scores over the vocabulary; the projection is tied to the token embedding.

        ``output_projection`` is an nn.Linear copy of that matrix, set when the model
        is quantized: it is the largest matmul of every decoding step."""
        if self.output_projection is not None:
            if hidden.dim() == 1:  # quantized linear layers want a batch dimension
                return self.output_projection(hidden[None])[0]
            return self.output_projection(hidden)
        return hidden @ self.token_embedding.weight.T

    def forward(
        self, tokens: Tensor, cache: DecoderCache, want_cross_weights: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """Run ``tokens`` after what the cache holds; returns the final hidden states
        (call ``logits`` on the positions you need) and, if asked, the cross-attention
        weights of every layer (batch, heads, tokens, audio frames)."""
        offset = cache.length
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + tokens.shape[-1]]
        cross_weights: list[Tensor] = []
        first_call = not cache.self_keys
        for i, block in enumerate(self.blocks):
            attn = block.attn
            h = block.attn_ln(x)
            k = attn.split_heads(attn.key(h))
            v = attn.split_heads(attn.value(h))
            if first_call:
                cache.self_keys.append(k)
                cache.self_values.append(v)
            else:
                cache.self_keys[i] = k = torch.cat([cache.self_keys[i], k], dim=-2)
                cache.self_values[i] = v = torch.cat([cache.self_values[i], v], dim=-2)
            out, _ = attn.attend(attn.split_heads(attn.query(h)), k, v, causal=True, want_weights=False)
            x = x + attn.out(out)

            cross = block.cross_attn
            h = block.cross_attn_ln(x)
            out, weights = cross.attend(
                cross.split_heads(cross.query(h)),
                cache.cross_keys[i],
                cache.cross_values[i],
                causal=False,
                want_weights=want_cross_weights,
            )
            if weights is not None:
                cross_weights.append(weights)
            x = x + cross.out(out)
            x = x + block.mlp(block.mlp_ln(x))
        return self.ln(x), cross_weights


class Whisper(nn.Module):
    def __init__(self, dims: ModelDimensions):
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(
            dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
        )
        self.decoder = TextDecoder(
            dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer
        )
        # (layer, head) pairs whose cross-attention follows the words in time
        self.alignment_heads: list[tuple[int, int]] = []

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= 51865

    @property
    def num_languages(self) -> int:
        return self.dims.n_vocab - 51765 - int(self.is_multilingual)
