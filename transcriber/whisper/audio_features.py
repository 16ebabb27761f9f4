"""Whisper's log-mel spectrogram: 25 ms Hann window, 10 ms hop, 80 slaney mel bands."""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # mel frames: 100 per second
ENCODER_POSITIONS_PER_SECOND = FRAMES_PER_SECOND // 2  # the second conv has stride 2


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = hz >= min_log_hz
    mels[log_region] = min_log_mel + np.log(hz[log_region] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    hz = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = mels >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return hz


def mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular slaney-normalised filters, (n_mels, n_fft // 2 + 1); equals librosa.filters.mel."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_points = np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    spacing = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / spacing[:-1, None]
    upper = ramps[2:] / spacing[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS: dict[int, torch.Tensor] = {}
_WINDOW = torch.hann_window(N_FFT)


def log_mel_spectrogram(audio: np.ndarray | torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """(n_mels, frames) log-mel features of 16 kHz mono audio, as openai-whisper computes them."""
    if n_mels not in _FILTERS:
        _FILTERS[n_mels] = torch.from_numpy(mel_filters(SAMPLE_RATE, N_FFT, n_mels))
    samples = torch.as_tensor(audio, dtype=torch.float32)
    stft = torch.stft(samples, N_FFT, HOP_LENGTH, window=_WINDOW, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(_FILTERS[n_mels] @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
