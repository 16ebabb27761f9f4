"""Microphone capture with sounddevice (PortAudio).

The audio callback runs on PortAudio's real-time thread: it only copies the
samples into a queue and counts overflows; it never blocks, allocates little,
and never waits on disk or recognition. Everything else (resampling to 16 kHz,
writing to disk, recognition) happens on the consumer's side of the queue.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass

import numpy as np

from transcriber.audio.decode import StreamResampler

SAMPLE_RATE = 16000


class CaptureError(Exception):
    """The input device could not be opened or stopped delivering audio."""


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({self.channels} ch, {self.default_samplerate / 1000:g} kHz)"


def input_devices() -> list[InputDevice]:
    """Devices with at least one input channel; [] when PortAudio is unavailable."""
    try:
        import sounddevice
    except OSError:
        return []
    default_input = sounddevice.default.device[0]
    return [
        InputDevice(
            index, str(d["name"]), int(d["max_input_channels"]), float(d["default_samplerate"]), index == default_input
        )
        for index, d in enumerate(sounddevice.query_devices())
        if d["max_input_channels"] > 0
    ]


class MicrophoneCapture:
    """Records from one input device into ``blocks``: 16 kHz mono float32 arrays.

    ``device``: a PortAudio index or name (None: the default input). If the device
    does not offer 16 kHz, it is opened at its own rate and resampled by ``read``.
    """

    def __init__(self, device: int | str | None = None, block_seconds: float = 0.05):
        self.device = device
        self.block_seconds = block_seconds
        self.raw: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self.overflows = 0  # blocks PortAudio dropped before we got them
        self.callbacks = 0
        self.last_callback = 0.0  # time.monotonic() of the last block
        self.stream_error: str | None = None
        self.sample_rate = SAMPLE_RATE
        self._stream = None
        self._stopping = False
        self._resampler: StreamResampler | None = None

    def start(self) -> None:
        try:
            import sounddevice
        except OSError as error:
            raise CaptureError(f"audio input unavailable: {error}") from error
        self._stopping = False
        self._stream = self._open(sounddevice)
        self.last_callback = time.monotonic()
        self._stream.start()

    def _open(self, sounddevice):
        errors = []
        for rate in (SAMPLE_RATE, None):  # None: the device's own rate
            try:
                info = sounddevice.query_devices(self.device, "input")
                self.sample_rate = int(rate or info["default_samplerate"])
                return sounddevice.InputStream(
                    device=self.device,
                    samplerate=self.sample_rate,
                    channels=1,
                    dtype="float32",
                    blocksize=int(self.sample_rate * self.block_seconds),
                    callback=self._callback,
                    finished_callback=self._finished,
                )
            except (sounddevice.PortAudioError, ValueError) as error:
                errors.append(str(error))
        raise CaptureError(f"cannot open the input device {self.device!r}: {errors[-1]}")

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self.raw.put(indata[:, 0].copy())
        self.callbacks += 1
        self.last_callback = time.monotonic()

    def _finished(self) -> None:
        if self._stream is not None and not self._stopping:
            self.stream_error = "the input device stopped delivering audio"

    def stop(self) -> None:
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        """The next captured block at 16 kHz, or None if none came within ``timeout``."""
        try:
            block = self.raw.get(timeout=timeout)
        except queue.Empty:
            return None
        if self.sample_rate == SAMPLE_RATE:
            return block
        if self._resampler is None:
            self._resampler = StreamResampler(self.sample_rate)
        return self._resampler.process(block)

    def drain(self) -> list[np.ndarray]:
        """Every block still queued (after ``stop``), resampled."""
        blocks = []
        while (block := self.read(timeout=0.0)) is not None:
            blocks.append(block)
        if self._resampler is not None:
            blocks.append(self._resampler.flush())
        return blocks

    def silent_for(self) -> float:
        """Seconds since the device last delivered a block (a vanished device goes quiet)."""
        return time.monotonic() - self.last_callback
