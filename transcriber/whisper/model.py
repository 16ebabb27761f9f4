"""Whisper in plain torch, laid out like openai-whisper's ``model.py``.

Module and parameter names match openai-whisper checkpoints, so a ``.pt``
checkpoint loads with ``load_state_dict``. Two differences matter for
streaming: the encoder accepts a shorter audio context than 30 s (it slices the
positional embedding, as whisper.cpp's ``audio_ctx`` does), and the decoder
keeps an explicit key/value cache so that greedy decoding costs one token's
work per step.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

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

    @staticmethod
    def merge_heads(x: Tensor) -> Tensor:
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, -1)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, want_weights: bool) -> tuple[Tensor, Tensor | None]:
        """Heads-first q, k, v -> (merged output, attention weights if asked); every
        query sees every key (the decoder's causal self-attention is in TextDecoder)."""
        if want_weights:
            weights = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
            weights = None
        return self.merge_heads(out), weights


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
        self.counter.last_flops = x.shape[0] * self.flops(x.shape[1])
        return self.ln_post(x)


@dataclass
class SubBlockCounter(threading.local):
    """Counts encoder sub-block evaluations (self-attention and MLP, per frame):
    how many were offered and how many actually ran. Every one runs in this
    encoder; one that skips frames reports fewer. Kept per thread: engines that
    share one model on several threads (engine/pieces.py) each read their own."""

    run: int = 0
    offered: int = 0
    last_flops: float = 0.0  # of this thread's latest forward: encoders that skip work report less

    def __reduce__(self) -> tuple[type, tuple]:
        return type(self), ()  # a copy (quantize_dynamic deep-copies the model) counts afresh

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
    """Keys and values of all decoder layers, stacked (layers, batch, heads, positions,
    head size): the self-attention's grow with the text, the cross-attention's are the
    audio's and stay fixed."""

    cross_keys: Tensor
    cross_values: Tensor
    self_keys: Tensor | None = None
    self_values: Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.self_keys is None else self.self_keys.shape[-2]

    @property
    def audio_positions(self) -> int:
        return self.cross_keys.shape[-2]

    def fresh(self) -> DecoderCache:
        """A cache for another text over the same audio: the cross-attention's keys and
        values are shared, the self-attention starts empty."""
        return DecoderCache(self.cross_keys, self.cross_values)

    def truncate(self, length: int) -> None:
        """Forget the positions from ``length`` on (tokens that were proposed and rejected)."""
        if self.self_keys is not None and self.self_values is not None:
            self.self_keys = self.self_keys[..., :length, :]
            self.self_values = self.self_values[..., :length, :]

    def text_keys_values(self) -> tuple[Tensor, Tensor]:
        """The self-attention's keys and values so far (no positions for a fresh cache)."""
        if self.self_keys is None or self.self_values is None:
            layers, batch, heads, _, size = self.cross_keys.shape
            empty = self.cross_keys.new_zeros(layers, batch, heads, 0, size)
            return empty, empty
        return self.self_keys, self.self_values


# (tokens, causal mask, text keys, text values, audio keys, audio values) -> (hidden
# states, text keys, text values): TextDecoder.layers without attention weights
LayerStack = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


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
        keys, values = [], []
        for block in self.blocks:
            cross = block.cross_attn
            keys.append(cross.split_heads(cross.key(audio_features)))
            values.append(cross.split_heads(cross.value(audio_features)))
        return DecoderCache(torch.stack(keys), torch.stack(values))

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
        self,
        tokens: Tensor,
        cache: DecoderCache,
        want_cross_weights: bool = False,
        layers: LayerStack | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Run ``tokens`` after what the cache holds; returns the final hidden states
        (call ``logits`` on the positions you need) and, if asked, the cross-attention
        weights of every layer (batch, heads, tokens, audio frames). ``layers``: a
        compiled copy of ``layers`` (``traced_layers``) to run instead, where no
        weights are asked for."""
        offset, n_tokens = cache.length, tokens.shape[-1]
        x = self.token_embedding(tokens) + self.positional_embedding[offset : offset + n_tokens]
        # each new token sees the cache and the new tokens up to itself
        mask = torch.ones(n_tokens, offset + n_tokens, dtype=torch.bool).tril(offset)
        text_keys, text_values = cache.text_keys_values()
        audio = (cache.cross_keys, cache.cross_values)
        cross_weights: list[Tensor] = []
        if layers is not None and not want_cross_weights:
            x, keys, values = layers(x, mask, text_keys, text_values, *audio)
        else:
            x, keys, values, cross_weights = self.layers(x, mask, text_keys, text_values, *audio, want_cross_weights)
        cache.self_keys, cache.self_values = keys, values
        return x, cross_weights

    def layers(
        self,
        x: Tensor,
        mask: Tensor,
        text_keys: Tensor,
        text_values: Tensor,
        audio_keys: Tensor,
        audio_values: Tensor,
        want_cross_weights: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """The blocks and the final layer norm over embedded tokens ``x``; tensors only,
        so that it can be traced. Returns the hidden states, the text keys and values
        with the new tokens', and the cross-attention weights if asked."""
        keys, values, cross_weights = [], [], []
        for i, block in enumerate(self.blocks):
            attn = block.attn
            h = block.attn_ln(x)
            keys.append(torch.cat([text_keys[i], attn.split_heads(attn.key(h))], dim=-2))
            values.append(torch.cat([text_values[i], attn.split_heads(attn.value(h))], dim=-2))
            out = F.scaled_dot_product_attention(attn.split_heads(attn.query(h)), keys[i], values[i], attn_mask=mask)
            x = x + attn.out(attn.merge_heads(out))

            cross = block.cross_attn
            h = block.cross_attn_ln(x)
            out, weights = cross.attend(
                cross.split_heads(cross.query(h)), audio_keys[i], audio_values[i], want_cross_weights
            )
            if weights is not None:
                cross_weights.append(weights)
            x = x + cross.out(out)
            x = x + block.mlp(block.mlp_ln(x))
        return self.ln(x), torch.stack(keys), torch.stack(values), cross_weights


class _LayerStack(nn.Module):
    """TextDecoder.layers without cross-attention weights, as a module to trace."""

    def __init__(self, decoder: TextDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, *tensors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, keys, values, _ = self.decoder.layers(*tensors)
        return x, keys, values


def traced_layers(decoder: TextDecoder) -> LayerStack:
    """The decoder's layers traced and frozen by TorchScript: the same numbers as
    ``TextDecoder.layers``, without Python's dispatch of some 150 operations per call,
    which was half the time of a one-token step (tiny.en int8, 2 cores: 5.7 -> 2.6 ms;
    eight tokens 8.1 -> 4.6 ms). Any number of tokens and cached positions; batch 1."""
    d, heads = decoder.positional_embedding.shape[1], decoder.blocks[0].attn.n_head
    layers, tokens, cached, frames = len(decoder.blocks), 3, 5, 10
    text = torch.zeros(layers, 1, heads, cached, d // heads)
    audio = torch.zeros(layers, 1, heads, frames, d // heads)
    mask = torch.ones(tokens, cached + tokens, dtype=torch.bool).tril(cached)
    example = (torch.zeros(1, tokens, d), mask, text, text, audio, audio)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns that shapes become constants: none do here
        traced = torch.jit.trace(_LayerStack(decoder).eval(), example, check_trace=False)
        frozen = torch.jit.freeze(traced)
        for _ in range(2):  # TorchScript optimises on the first calls: here, not while decoding
            frozen(*example)
    return frozen


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
