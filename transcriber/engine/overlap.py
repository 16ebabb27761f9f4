"""Overlap detection: how many people speak, frame by frame (0, 1, or 2 and more).

The separator needs to know when a second voice joins the one already speaking,
and when the overlap ends. A small recurrent network does this on 10 ms log-mel
frames; it is trained on mixtures of the shared utterances
(``training/train_overlap.py``, card in ``models/overlap.md``).

Streaming: the network is causal (left-padded convolutions, a one-way GRU) and
is trained to say at frame t what was true at frame t - ``delay_frames``, so it
sees ``delay_frames`` of the future without any look-ahead in the layers. The
stream carries the convolutions' left context and the GRU state from block to
block, so its output does not depend on how the audio was cut into blocks.

Times: a frame k covers samples [k * 160, k * 160 + 400) of 16 kHz audio; its
time is its centre, (k * 160 + 200) / 16000 seconds.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transcriber.whisper.arbitrators import models_dir
from transcriber.whisper.audio_features import HOP_LENGTH, N_FFT, SAMPLE_RATE, mel_filters

SILENCE, ONE_SPEAKER, OVERLAP = 0, 1, 2
SILENT_FEATURE = (-10.0 + 4.0) / 4.0  # the floor, log10(1e-10), scaled as every feature
DEFAULT_DETECTOR = "overlap/detector"  # models/overlap/detector.{pt,json}


@dataclass(frozen=True)
class OverlapDimensions:
    n_mels: int = 64
    channels: int = 64
    kernel: int = 5
    hidden: int = 96
    classes: int = 3
    delay_frames: int = 20  # 0.2 s of look-ahead, paid for in latency


class LogMelFrames:
    """Log-mel frames without Whisper's per-window normalisation (a stream has no
    window maximum): log10 of mel power, floored at 1e-10, scaled like Whisper's."""

    def __init__(self, n_mels: int):
        self.filters = torch.from_numpy(mel_filters(SAMPLE_RATE, N_FFT, n_mels))
        self.window = torch.hann_window(N_FFT)

    def __call__(self, audio: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(frames, n_mels) for every whole frame of ``audio`` (frame k at sample k * hop)."""
        samples = torch.as_tensor(audio, dtype=torch.float32)
        if samples.shape[-1] < N_FFT:
            return torch.zeros(*samples.shape[:-1], 0, self.filters.shape[0])
        frames = samples.unfold(-1, N_FFT, HOP_LENGTH) * self.window
        power = torch.fft.rfft(frames).abs() ** 2
        mel = torch.clamp(power @ self.filters.T, min=1e-10).log10()
        return (mel + 4.0) / 4.0


class OverlapDetector(nn.Module):
    def __init__(self, dims: OverlapDimensions):
        super().__init__()
        self.dims = dims
        self.norm = nn.LayerNorm(dims.n_mels)
        self.conv1 = nn.Conv1d(dims.n_mels, dims.channels, dims.kernel)
        self.conv2 = nn.Conv1d(dims.channels, dims.channels, dims.kernel)
        self.gru = nn.GRU(dims.channels, dims.hidden, batch_first=True)
        self.out = nn.Linear(dims.hidden, dims.classes)

    @property
    def context_frames(self) -> int:
        """Frames of left context the two convolutions need for their first output."""
        return 2 * (self.dims.kernel - 1)

    def forward(self, features: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features (batch, context_frames + frames, n_mels) -> logits (batch, frames,
        classes) and the GRU state. The first ``context_frames`` frames are context only."""
        x = self.norm(features).transpose(1, 2)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x)).transpose(1, 2)
        x, state = self.gru(x, state)
        return self.out(x), state

    # -- files -------------------------------------------------------------------------------------
    def save(self, path: Path, notes: dict | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path.with_suffix(".pt"))
        card = {"dimensions": asdict(self.dims), **(notes or {})}
        path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> OverlapDetector:
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        detector = cls(OverlapDimensions(**card["dimensions"]))
        detector.load_state_dict(torch.load(path.with_suffix(".pt"), weights_only=True, map_location="cpu"))
        return detector.eval()


def detector_path(name: str = DEFAULT_DETECTOR) -> Path:
    return models_dir() / name


def load_overlap_detector(name_or_path: str | Path = DEFAULT_DETECTOR) -> OverlapDetector:
    path = Path(name_or_path)
    if not path.with_suffix(".pt").is_file():
        path = detector_path(str(name_or_path))
    if not path.with_suffix(".pt").is_file():
        raise FileNotFoundError(f"no overlap detector at {path}.pt (train one with training/train_overlap.py)")
    return OverlapDetector.load(path)


class OverlapStream:
    """Feeds audio blocks through a detector; returns the speaker-count probabilities
    of the frames that became known, in order. Frame k of the output describes audio
    frame k (the detector's delay is taken off), from time 0 of the stream."""

    def __init__(self, detector: OverlapDetector):
        self.detector = detector
        self.features = LogMelFrames(detector.dims.n_mels)
        self.samples = np.zeros(0, dtype=np.float32)  # not yet framed
        # a stream starts as if silence came before it
        self.context = torch.full((1, detector.context_frames, detector.dims.n_mels), SILENT_FEATURE)
        self.state: torch.Tensor | None = None
        self.frames_out = 0  # network outputs produced

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """(frames, classes) probabilities of the audio frames now decided."""
        self.samples = np.concatenate([self.samples, np.asarray(samples, dtype=np.float32).reshape(-1)])
        whole = (len(self.samples) - N_FFT) // HOP_LENGTH + 1 if len(self.samples) >= N_FFT else 0
        if whole <= 0:
            return np.zeros((0, self.detector.dims.classes), dtype=np.float32)
        frames = self.features(self.samples[: (whole - 1) * HOP_LENGTH + N_FFT])[None]
        self.samples = self.samples[whole * HOP_LENGTH :]
        return self._run(frames)

    def finish(self) -> np.ndarray:
        """The last ``delay_frames`` frames, decided on silence after the end."""
        delay = self.detector.dims.delay_frames
        padding = torch.full((1, delay, self.detector.dims.n_mels), SILENT_FEATURE)
        return self._run(padding)

    def _run(self, frames: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            logits, self.state = self.detector(torch.cat([self.context, frames], dim=1), self.state)
        self.context = torch.cat([self.context, frames], dim=1)[:, -self.detector.context_frames :]
        probabilities = torch.softmax(logits[0], dim=-1).numpy()
        self.frames_out += len(probabilities)
        skip = max(0, self.detector.dims.delay_frames - (self.frames_out - len(probabilities)))
        return probabilities[skip:]


def detect(detector: OverlapDetector, audio: np.ndarray, block_seconds: float = 1.0) -> np.ndarray:
    """(frames, classes) probabilities for a whole recording, through the stream."""
    stream = OverlapStream(detector)
    block = int(block_seconds * SAMPLE_RATE)
    parts = [stream.feed(audio[i : i + block]) for i in range(0, len(audio), block)]
    parts.append(stream.finish())
    return np.concatenate(parts)
