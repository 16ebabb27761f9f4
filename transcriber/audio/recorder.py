"""Recorded audio on disk, safe against crashes and full disks.

While a meeting is recorded, every captured sample is appended to a raw file
(16 kHz mono, 16-bit little-endian PCM, no header) and flushed to disk every
half second. A raw file has nothing to finalise: after a crash, all bytes up to
the last flush are a valid recording. When the recording ends, it is converted
to FLAC (lossless, half the size) and the raw file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
BYTES_PER_SAMPLE = 2


class RecordingError(Exception):
    """Writing the recording failed (disk full, folder gone); what was written is kept."""


class PcmRecorder:
    """Appends float32 blocks as int16 PCM; flushes and fsyncs every ``flush_seconds``
    (half a second: a crash loses less than the one second we promise)."""

    def __init__(self, path: Path | str, flush_seconds: float = 0.5):
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self._file = open(self.path, "ab")  # noqa: SIM115 - open for the whole recording
        self.samples_written = self.path.stat().st_size // BYTES_PER_SAMPLE
        self._flushed_at = time.monotonic()

    @property
    def seconds(self) -> float:
        return self.samples_written / SAMPLE_RATE

    def write(self, samples: np.ndarray) -> None:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
        try:
            self._file.write(pcm.tobytes())
            self.samples_written += len(pcm)
            if time.monotonic() - self._flushed_at >= self.flush_seconds:
                self.flush()
        except OSError as error:
            raise RecordingError(_reason(self.path, error)) from error

    def flush(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            raise RecordingError(_reason(self.path, error)) from error
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            # after a failed flush the buffer is still full and closing fails the same
            # way; the file is closed all the same, and flush() has said why
            with contextlib.suppress(OSError):
                self._file.close()


def _reason(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return f"the disk is full: recording stopped; the audio up to now is kept in {path.parent}"
    return f"cannot write the recording to {path} ({error.strerror or error}); the audio up to now is kept"


def read_pcm(path: Path | str) -> np.ndarray:
    """A raw recording as float32; a half-written last sample is ignored."""
    raw = Path(path).read_bytes()
    usable = len(raw) - len(raw) % BYTES_PER_SAMPLE
    return np.frombuffer(raw[:usable], dtype="<i2").astype(np.float32) / 32768.0


def pcm_to_flac(pcm_path: Path | str, flac_path: Path | str, block_seconds: float = 60.0) -> float:
    """Convert a raw recording to FLAC in blocks (memory stays flat); returns its seconds.
    The raw file stays until the caller removes it."""
    pcm_path, flac_path = Path(pcm_path), Path(flac_path)
    block_bytes = int(block_seconds * SAMPLE_RATE) * BYTES_PER_SAMPLE
    samples = 0
    partial = flac_path.with_suffix(".flac.part")
    try:
        with (
            open(pcm_path, "rb") as source,
            sf.SoundFile(partial, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="FLAC") as target,
        ):
            while chunk := source.read(block_bytes):
                chunk = chunk[: len(chunk) - len(chunk) % BYTES_PER_SAMPLE]
                pcm = np.frombuffer(chunk, dtype="<i2")
                target.write(pcm)
                samples += len(pcm)
    except (OSError, RuntimeError) as error:  # soundfile's errors are RuntimeErrors
        partial.unlink(missing_ok=True)
        raise RecordingError(f"cannot convert {pcm_path} to FLAC ({error}); the raw recording is kept") from error
    partial.replace(flac_path)  # never a half-written FLAC under the final name
    return samples / SAMPLE_RATE
