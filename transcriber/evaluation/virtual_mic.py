"""A virtual microphone for end-to-end runs: a PulseAudio null sink whose monitor
is the default input, so that what ``paplay`` plays into the sink is what the app
records through sounddevice (PortAudio's ``default`` device goes through Pulse).

Needs the Debian packages pulseaudio, pulseaudio-utils, libasound2-plugins and
libportaudio2 (scripts/apt-packages.txt). PortAudio lists devices when
sounddevice is first imported: record in a process started after the sink is
up, with the microphone's ``env`` (it names the private server's socket).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SINK = "transcriber_virtual_mic"


def available() -> bool:
    return all(shutil.which(tool) for tool in ("pulseaudio", "pactl", "paplay"))


@dataclass
class VirtualMicrophone:
    """A private PulseAudio server with one null sink; ``env`` points a process at it
    (give it to every process that records or plays)."""

    sink: str
    env: dict[str, str]

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, check=True, capture_output=True, text=True, timeout=30)
        return done.stdout.strip()

    def play(self, path: Path | str) -> None:
        """Play a sound file into the sink; returns when it has been played."""
        subprocess.run(["paplay", f"--device={self.sink}", str(path)], env=self.env, check=True, timeout=3600)

    def unplug(self) -> None:
        """Remove the sink: the microphone the app records from is gone (no other source)."""
        self.pactl("unload-module", "module-null-sink")


@contextmanager
def virtual_microphone(sink: str = SINK) -> Iterator[VirtualMicrophone]:
    """Start a PulseAudio server of our own (its own socket: a desktop's sound server is
    left alone) with a null sink whose monitor is the default source; stop it after."""
    runtime = Path(tempfile.mkdtemp(prefix="transcriber-pulse-"))
    env = {
        **os.environ,
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_STATE_PATH": str(runtime),
        "PULSE_SERVER": f"unix:{runtime}/native",
    }
    server = [
        "pulseaudio",
        "--daemonize=yes",
        "-n",  # none of the system's default modules: only what is loaded here
        "--exit-idle-time=-1",
        f"--load=module-native-protocol-unix socket={runtime}/native auth-anonymous=1",
        f"--load=module-null-sink sink_name={sink}",
    ]
    subprocess.run(server, env=env, check=True, capture_output=True, timeout=30)
    microphone = VirtualMicrophone(sink, env)
    try:
        for _ in range(100):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        microphone.pactl("set-default-source", f"{sink}.monitor")
        yield microphone
    finally:
        subprocess.run(["pulseaudio", "--kill"], env=env, capture_output=True, timeout=30)
        shutil.rmtree(runtime, ignore_errors=True)


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
