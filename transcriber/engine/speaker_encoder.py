"""GE2E speaker d-vectors: resemblyzer's VoiceEncoder reimplemented in plain torch.

The network (3-layer LSTM 40->256, linear 256->256, ReLU, L2 norm) and its
features (40-band mel *power* spectrogram, 25 ms Hann window, 10 ms hop, 16 kHz)
follow resemblyzer 0.1.4 exactly; only its weights file is read. The package
itself is never imported: its import pulls librosa and the source package
``webrtcvad``, which would replace webrtcvad-wheels.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_MELS = 40
HIDDEN = 256
EMBEDDING = 256
LAYERS = 3
PARTIAL_FRAMES = 160  # resemblyzer's partial utterance: 1.6 s
PARTIALS_PER_SECOND = 1.3  # embed_utterance's rate
MIN_COVERAGE = 0.75  # a last partial needs 75 % real audio, else it is dropped
NORM_TARGET_DBFS = -30.0

# Multiply-adds per mel frame: four LSTM gates per layer over [input, hidden].
LSTM_MACS_PER_FRAME = sum(4 * HIDDEN * (i + HIDDEN) for i in [N_MELS] + [HIDDEN] * (LAYERS - 1))
LINEAR_MACS = HIDDEN * EMBEDDING  # once per window, on the last hidden state


def weights_path() -> Path:
    """resemblyzer's ``pretrained.pt``, found without importing the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("resemblyzer is not installed (pip install --no-deps resemblyzer==0.1.4)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"resemblyzer's weights are missing: {path}")
    return path


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz * 3.0 / 200.0
    log = hz >= 1000.0
    mel[log] = 15.0 + np.log(hz[log] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * 200.0 / 3.0
    log = mel >= 15.0
    hz[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log] - 15.0))
    return hz


def mel_filterbank() -> np.ndarray:
    """(40, 201) slaney-normalised triangles: librosa.filters.mel(sr=16000, n_fft=400, n_mels=40)."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    top = _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0]
    edges = _mel_to_hz(np.linspace(0.0, top, N_MELS + 2))  # band edges, equally spaced in mel
    width = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / width[:-1, None]
    falling = ramps[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney norm: each triangle has unit area, so wide high bands are not louder.
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filterbank()
# Periodic Hann, as scipy.signal.get_window("hann", 400) that librosa uses.
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float64)


def mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 mel power spectrogram, as resemblyzer's wav_to_mel_spectrogram.

    librosa >= 0.10 centres frames with zero padding of n_fft // 2 on each side, so
    there are 1 + len(audio) // 160 frames.
    """
    audio = np.asarray(audio, dtype=np.float64)
    padded = np.pad(audio, N_FFT // 2)
    n_frames = 1 + (len(padded) - N_FFT) // HOP_LENGTH
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return (power @ _FILTERS.T.astype(np.float64)).astype(np.float32)


def normalize_volume(audio: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Raise (never lower) the level to target_dbfs, as resemblyzer's preprocess_wav."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms <= 0.0:
        return audio
    gain_db = target_dbfs - 20.0 * np.log10(rms)
    return audio if gain_db < 0 else (audio * 10 ** (gain_db / 20)).astype(np.float32)


def partial_slices(n_samples: int) -> list[slice]:
    """Mel-frame slices of resemblyzer's embed_utterance (rate 1.3/s, min coverage 0.75)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP_LENGTH))
    step = int(np.round(SAMPLE_RATE / PARTIALS_PER_SECOND / HOP_LENGTH))
    starts = range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    slices = [slice(s, s + PARTIAL_FRAMES) for s in starts]
    # The last partial runs past the end; keep it only if enough of it is real audio.
    coverage = (n_samples - slices[-1].start * HOP_LENGTH) / (PARTIAL_FRAMES * HOP_LENGTH)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices = slices[:-1]
    return slices


def window_starts(n_frames: int, window_seconds: float, hop_seconds: float) -> tuple[list[int], int]:
    """First frames of sliding windows over ``n_frames`` 10 ms frames, and the window
    length in frames: the last window ends at the end, so the tail is covered; fewer
    frames than one window give one window over all of them (no padding to dilute it)."""
    win = max(1, int(round(window_seconds * SAMPLE_RATE / HOP_LENGTH)))
    hop = max(1, int(round(hop_seconds * SAMPLE_RATE / HOP_LENGTH)))
    if n_frames <= win:
        return [0], n_frames
    starts = list(range(0, n_frames - win + 1, hop))
    if starts[-1] + win < n_frames:
        starts.append(n_frames - win)
    return starts, win


def windows_flops_per_second(window_seconds: float, hop_seconds: float) -> float:
    """Estimated FLOPs of ``embed_windows`` per second of audio."""
    frames_per_second = SAMPLE_RATE / HOP_LENGTH * window_seconds / hop_seconds
    return 2.0 * (frames_per_second * LSTM_MACS_PER_FRAME + LINEAR_MACS / hop_seconds)


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one thread: the LSTM's steps are small matrix-vector products, and
    splitting each across two threads costs more in synchronisation than it saves
    (one 1.5 s window: 9 ms on one thread, 90 ms on two, on the 2-core dev machine)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _DVectorNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 40) -> (batch, 256) L2-normalised; ReLU makes every entry >= 0."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)


class SpeakerEncoder:
    """256-d speaker embeddings of 16 kHz mono float32 audio.

    normalize: raise quiet audio to -30 dBFS first, as resemblyzer's preprocess_wav
    does. Off by default: it changed nothing on whole utterances of speaker_only
    (EER 0.0 % either way) and EER on 1.5 s pieces by 0.02 point (4.63 % off, 4.65 %
    on), while a per-piece gain would make a stream's embeddings depend on where the
    pieces were cut.
    """

    def __init__(self, normalize: bool = False, window_seconds: float = 1.5, hop_seconds: float = 0.75):
        self.normalize = normalize
        self.net = _DVectorNet()
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
        # The checkpoint also holds GE2E's similarity scale and bias, used only in training.
        self.net.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in ("lstm", "linear")})
        self.net.eval()
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        # Cost of embed_windows at its default window and hop: every frame goes through the
        # LSTM window / hop times (overlapping windows), plus one linear layer per window:
        # 2 x (200 x 1.35 M + 1.3 x 65 k) = 0.54 GFLOP per second of audio. embed() runs
        # 1.3 partials of 160 frames per second (208 frames), within 4 % of this, but never
        # less than one partial (1.6 s) however short the audio.
        self.flops_per_second = windows_flops_per_second(window_seconds, hop_seconds)

    def windows_flops_per_second(self, window_seconds: float, hop_seconds: float) -> float:
        return windows_flops_per_second(window_seconds, hop_seconds)

    @torch.no_grad()
    def _forward(self, mels: np.ndarray) -> np.ndarray:
        with _single_thread():
            return self.net(torch.from_numpy(np.ascontiguousarray(mels))).numpy()

    def _prepare(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        return normalize_volume(audio) if self.normalize else audio

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One (256,) L2-normalised embedding: resemblyzer's embed_utterance.

        1.6 s partials at 1.3 per second, the last zero-padded; their mean, renormalised.
        """
        audio = self._prepare(audio)
        slices = partial_slices(len(audio))
        needed = slices[-1].stop * HOP_LENGTH
        if needed >= len(audio):
            audio = np.pad(audio, (0, needed - len(audio)))
        mel = mel_spectrogram(audio)
        partials = self._forward(np.stack([mel[s] for s in slices]))
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def embed_windows(
        self, audio: np.ndarray, window_seconds: float | None = None, hop_seconds: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sliding-window embeddings for speaker-change detection.

        Returns (times, embeddings): the centre of each window in seconds from the start
        of ``audio``, shape (n,), and (n, 256) L2-normalised rows. The last window is
        aligned to the end so that the tail is covered; audio shorter than one window
        gives a single window over all of it (no zero padding, which would dilute it).
        """
        window_seconds = window_seconds or self.window_seconds
        hop_seconds = hop_seconds or self.hop_seconds
        audio = self._prepare(audio)
        mel = mel_spectrogram(audio)[: max(1, len(audio) // HOP_LENGTH)]  # drop the padded edge frame
        starts, win = window_starts(len(mel), window_seconds, hop_seconds)
        embeddings = self._forward(np.stack([mel[s : s + win] for s in starts]))
        times = (np.array(starts) + win / 2) * HOP_LENGTH / SAMPLE_RATE
        return times, embeddings
