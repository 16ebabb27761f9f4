"""How fast is this machine? DESIGN.md's speed check, so RTFs from different machines compare.

DESIGN.md timed 60 s of speech, 2 threads, greedy decoding, median of 3:
faster-whisper tiny.en int8 1.3 s, torch dynamic int8 1.8 s. This script times
the same on the first 60 s of ../shared/data's utterances, joined: faster-whisper
(the benchmarks' peer) and this project's recognizer (two 30 s windows, no word
timestamps), and prints each against DESIGN.md's figure.

    python benchmarks/machine_speed.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transcriber.evaluation.data import load_audio, load_utterances  # noqa: E402
from transcriber.evaluation.simulate import default_whisper_model_dir  # noqa: E402

SAMPLE_RATE = 16000
SECONDS = 60
REPEATS = 3
DESIGN_SECONDS = {"faster-whisper tiny.en int8": 1.3, "transcriber tiny.en int8 (torch)": 1.8}


def sixty_seconds_of_speech() -> np.ndarray:
    parts, samples = [], 0
    for utterance in load_utterances():
        audio = load_audio(utterance.path)
        parts.append(audio)
        samples += len(audio)
        if samples >= SECONDS * SAMPLE_RATE:
            break
    return np.concatenate(parts)[: SECONDS * SAMPLE_RATE].astype(np.float32)


def faster_whisper_decoder() -> Callable[[np.ndarray], str]:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(default_whisper_model_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def decode(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, beam_size=1, language="en")
        return " ".join(segment.text for segment in segments)

    return decode


def transcriber_decoder() -> Callable[[np.ndarray], str]:
    from transcriber.whisper.recognizer import load_recognizer

    recognizer = load_recognizer(threads=2)
    window = 30 * SAMPLE_RATE

    def decode(audio: np.ndarray) -> str:
        windows = [audio[i : i + window] for i in range(0, len(audio), window)]
        return " ".join(recognizer.transcribe(piece, with_words=False).text for piece in windows)

    return decode


def main() -> None:
    audio = sixty_seconds_of_speech()
    print(f"{len(audio) / SAMPLE_RATE:.0f} s of speech, 2 threads, greedy, median of {REPEATS}\n")
    print("| system | runs (s) | median (s) | DESIGN.md (s) | this machine / DESIGN.md |")
    print("|---|---|---|---|---|")
    for name, make in (
        ("faster-whisper tiny.en int8", faster_whisper_decoder),
        ("transcriber tiny.en int8 (torch)", transcriber_decoder),
    ):
        decode = make()
        decode(audio[: 5 * SAMPLE_RATE])  # warm-up: first calls allocate and pick kernels
        runs = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            decode(audio)
            runs.append(time.perf_counter() - started)
        median = statistics.median(runs)
        shown = ", ".join(f"{seconds:.2f}" for seconds in runs)
        print(f"| {name} | {shown} | {median:.2f} | {DESIGN_SECONDS[name]} | {median / DESIGN_SECONDS[name]:.2f} |")


if __name__ == "__main__":
    main()
