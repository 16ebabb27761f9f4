"""A virtual microphone for end-to-end runs: a PulseAudio null sink whose monitor
is the default input, so that what ``paplay`` plays into the sink is what the app
records through sounddevice (PortAudio's ``default`` device goes through Pulse).

Needs the Debian packages pulseaudio, pulseaudio-utils, libasound2-plugins and
libportaudio2 (scripts/apt-packages.txt). PortAudio lists devices when
sounddevice is first imported: record in a process started after the sink is up.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

SINK = "transcriber_virtual_mic"


def available() -> bool:
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "paplay"))


def _pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=30).stdout.strip()


@contextmanager
def virtual_microphone(sink: str = SINK) -> Iterator[str]:
    """Start PulseAudio if it is not running, add the null sink and make its monitor
    the default source; undo all of it afterwards. Yields the sink's name."""
    started = subprocess.run(["pulseaudio", "--check"], capture_output=True).returncode != 0
    if started:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1"], check=True, capture_output=True, timeout=30)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
    module = _pactl("load-module", "module-null-sink", f"sink_name={sink}")
    previous_source = _pactl("get-default-source")
    _pactl("set-default-source", f"{sink}.monitor")
    try:
        yield sink
    finally:
        subprocess.run(["pactl", "set-default-source", previous_source], capture_output=True)
        subprocess.run(["pactl", "unload-module", module], capture_output=True)
        if started:
            subprocess.run(["pulseaudio", "--kill"], capture_output=True)


def play(path: Path | str, sink: str = SINK) -> None:
    """Play a sound file into the sink; returns when it has been played."""
    subprocess.run(["paplay", f"--device={sink}", str(path)], check=True, timeout=3600)


def aligned_correlation(played: np.ndarray, recorded: np.ndarray) -> tuple[float, int]:
    """Pearson correlation of ``played`` with the part of ``recorded`` where it lies,
    and that offset in samples (found by FFT cross-correlation). A gap or a dropped
    block in the recording shifts what follows and breaks the correlation."""
    size = 1 << int(np.ceil(np.log2(len(played) + len(recorded))))
    spectrum = np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(played, size))
    offset = int(np.argmax(np.fft.irfft(spectrum, size)[: len(recorded)]))
    segment = recorded[offset : offset + len(played)]
    if len(segment) < len(played):
        return 0.0, offset
    return float(np.corrcoef(played, segment)[0, 1]), offset
