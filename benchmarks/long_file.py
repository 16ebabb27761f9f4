"""Memory and speed on a long recording: is memory flat in file length?

Builds a long meeting (simulated meetings from ../shared/data, repeated with
different seeds) as a FLAC file, transcribes it with the command line in a
child process, samples the child's resident memory every second and prints a
table: RSS after 10 %, 50 % and 100 % of the audio, peak RSS and the
real-time factor.

    python benchmarks/long_file.py --minutes 60
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from transcriber.evaluation.data import load_utterances
from transcriber.evaluation.simulate import simulate_meeting

SAMPLE_RATE = 16000


def build_long_meeting(path: Path, minutes: float) -> float:
    """Write simulated meetings one after another until ``minutes`` of audio; returns seconds."""
    utterances = load_utterances()
    written = 0
    seed = 0
    with sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC") as out:
        while written < minutes * 60 * SAMPLE_RATE:
            meeting = simulate_meeting(utterances, n_speakers=3, condition="0L", seed=seed)
            out.write(meeting.audio)
            out.write(np.zeros(2 * SAMPLE_RATE, dtype=np.float32))
            written += len(meeting.audio) + 2 * SAMPLE_RATE
            seed += 1
    return written / SAMPLE_RATE


def transcribe_and_watch(audio: Path, out_dir: Path) -> tuple[float, list[tuple[float, float]]]:
    """Run the CLI on ``audio``; return wall seconds and (elapsed, RSS MiB) samples."""
    command = [sys.executable, "-m", "transcriber", "transcribe", str(audio), "-o", str(out_dir), "--quiet"]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    process = psutil.Process(child.pid)
    samples: list[tuple[float, float]] = []
    while child.poll() is None:
        try:
            samples.append((time.perf_counter() - started, process.memory_info().rss / 2**20))
        except psutil.NoSuchProcess:
            break
        time.sleep(1.0)
    if child.returncode != 0:
        raise SystemExit(f"transcriber exited with {child.returncode}")
    return time.perf_counter() - started, samples


def rss_at(samples: list[tuple[float, float]], fraction: float, wall: float) -> float:
    moment = fraction * wall
    return max((rss for elapsed, rss in samples if elapsed <= moment), default=float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "long_meeting.flac"
        seconds = build_long_meeting(audio, args.minutes)
        wall, samples = transcribe_and_watch(audio, Path(tmp))
        text = (Path(tmp) / "long_meeting.txt").read_text()
        turns = sum(1 for block in text.split("\n\n") if block.strip())
    print("| audio | wall | RTF | RSS at 10 % | RSS at 50 % | RSS at end | peak RSS | turns |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {seconds / 60:.1f} min | {wall:.0f} s | {wall / seconds:.3f} | {rss_at(samples, 0.1, wall):.0f} MiB | "
        f"{rss_at(samples, 0.5, wall):.0f} MiB | {rss_at(samples, 1.0, wall):.0f} MiB | "
        f"{max(r for _, r in samples):.0f} MiB | {turns} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
