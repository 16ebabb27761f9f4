"""An audio source that plays an array as if a microphone captured it.

Same interface as :class:`MicrophoneCapture` (start, stop, read, drain,
overflows, stream_error, silent_for), so a recording can be driven from a known
signal: tests, benchmarks, and the app's test input. Blocks are delivered at
``speed`` times real time from a thread of its own, like a sound card would.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

SAMPLE_RATE = 16000


class ReplaySource:
    def __init__(self, audio: np.ndarray, speed: float = 1.0, block_seconds: float = 0.05):
        self.audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.speed = speed
        self.block = max(1, int(block_seconds * SAMPLE_RATE))
        self.position = 0  # samples delivered so far
        self.overflows = 0
        self.stream_error: str | None = None
        self.exhausted = threading.Event()  # every sample was delivered
        self._queue: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_block = time.monotonic()

    def start(self) -> None:
        self._running.set()
        self._last_block = time.monotonic()
        self._thread = threading.Thread(target=self._play, name="replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def _play(self) -> None:
        started, start_position = time.monotonic(), self.position
        while self._running.is_set() and self.position < len(self.audio):
            block = self.audio[self.position : self.position + self.block]
            self.position += len(block)
            self._queue.put(block.copy())
            self._last_block = time.monotonic()
            due = started + (self.position - start_position) / SAMPLE_RATE / self.speed
            time.sleep(max(0.0, due - time.monotonic()))
        if self.position >= len(self.audio):
            self.exhausted.set()

    def read(self, timeout: float = 0.1) -> np.ndarray | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> list[np.ndarray]:
        blocks = []
        while (block := self.read(timeout=0.0)) is not None:
            blocks.append(block)
        return blocks

    def silent_for(self) -> float:
        if self.exhausted.is_set():
            return 0.0  # the end of a replay is not a vanished device
        return time.monotonic() - self._last_block
