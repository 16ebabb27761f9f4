#!/usr/bin/env python3
"""Synthesize the demo meeting: assets/demo_meeting.ogg and its script assets/demo_meeting.txt.

Three espeak-ng speakers (different voice variants, pitch and speed, so a
speaker-embedding model can tell them apart) discuss a product launch in ten
turns, separated by 0.4-1.2 s pauses with no overlap. The pauses come from a
fixed seed, so reruns give the same timings and the same script.

Usage: python scripts/make_demo_meeting.py [--out-dir assets]
Needs the espeak-ng program (Debian package espeak-ng).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, installed or not

from transcriber.audio.decode import SAMPLE_RATE, load_audio  # noqa: E402


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str  # espeak-ng voice+variant
    pitch: int  # espeak-ng -p, 0-99
    speed: int  # espeak-ng -s, words per minute


# Median F0 about 135, 220 and 95 Hz, two accents, three speaking rates. Sarah is
# "en+f3" (British English): espeak-ng 1.51 silently drops the variant from
# "en-gb+f3", which would give her the default male voice.
DANIEL = Speaker("Daniel", "en-us+m3", pitch=75, speed=165)
SARAH = Speaker("Sarah", "en+f3", pitch=65, speed=170)
TOM = Speaker("Tom", "en-us+m7", pitch=5, speed=135)

TURNS: list[tuple[Speaker, str]] = [
    (DANIEL, "Good morning, everyone. Let's plan the launch of the new mobile app for next month."),
    (SARAH, "Thanks, Daniel. Marketing is ready, but we still need final screenshots for the store page."),
    (TOM, "The design team can deliver those by Friday, once the last build is approved."),
    (DANIEL, "Great. What about the beta feedback? Were there any serious problems?"),
    (SARAH, "Mostly small things. People asked for a dark mode and a faster sign in."),
    (TOM, "Dark mode is almost done, but I would rather ship it in the first update."),
    (DANIEL, "Agreed. We keep the launch date on the fifteenth and announce it next week."),
    (SARAH, "I will draft the press release and send it around on Wednesday."),
    (TOM, "And I will book the studio to record the demo video on Thursday afternoon."),
    (DANIEL, "Perfect. Thank you all, and see you at the same time next week."),
]

PAUSE_RANGE_SECONDS = (0.4, 1.2)
LEAD_IN_SECONDS = 0.5
TAIL_SECONDS = 0.8
SEED = 20240611
# Level every turn alike (as a meeting's automatic gain would), then leave headroom.
TURN_RMS = 0.08
PEAK_LIMIT = 0.89


@dataclass(frozen=True)
class Turn:
    speaker: Speaker
    text: str
    start: float
    end: float


def synthesize(speaker: Speaker, text: str, workdir: Path) -> np.ndarray:
    """One utterance as 16 kHz mono float32, with espeak-ng's edge silence trimmed."""
    wav = workdir / "turn.wav"
    command = ["espeak-ng", "-v", speaker.voice, "-p", str(speaker.pitch), "-s", str(speaker.speed)]
    subprocess.run([*command, "-w", str(wav), text], check=True, capture_output=True)
    return level(trim_silence(load_audio(wav)))


def trim_silence(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    # espeak-ng pads each utterance; the script's pauses should be the only gaps.
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def level(audio: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio**2)))
    return audio * (TURN_RMS / rms) if rms > 0 else audio


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def build_meeting(workdir: Path) -> tuple[np.ndarray, list[Turn]]:
    rng = random.Random(SEED)
    pieces = [silence(LEAD_IN_SECONDS)]
    cursor = LEAD_IN_SECONDS
    turns: list[Turn] = []
    for index, (speaker, text) in enumerate(TURNS):
        if index:
            pause = silence(rng.uniform(*PAUSE_RANGE_SECONDS))
            pieces.append(pause)
            cursor += pause.size / SAMPLE_RATE
        speech = synthesize(speaker, text, workdir)
        pieces.append(speech)
        turns.append(Turn(speaker, text, cursor, cursor + speech.size / SAMPLE_RATE))
        cursor = turns[-1].end
    pieces.append(silence(TAIL_SECONDS))
    audio = np.concatenate(pieces)
    peak = float(np.abs(audio).max())
    if peak > PEAK_LIMIT:
        audio *= PEAK_LIMIT / peak
    return audio.astype(np.float32), turns


def timestamp(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def script_text(turns: list[Turn], total_seconds: float) -> str:
    voices = ", ".join(f"{s.name} = espeak-ng {s.voice} -p {s.pitch} -s {s.speed}" for s in (DANIEL, SARAH, TOM))
    lines = [
        "# Demo meeting: product launch planning. Synthesized by scripts/make_demo_meeting.py.",
        f"# Voices: {voices}.",
        f"# Duration {total_seconds:.2f} s, 16 kHz mono. One turn per line: [start - end] Speaker: text",
    ]
    lines += [f"[{timestamp(t.start)} - {timestamp(t.end)}] {t.speaker.name}: {t.text}" for t in turns]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO / "assets")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is not installed (apt-get install espeak-ng)")

    with tempfile.TemporaryDirectory() as workdir:
        audio, turns = build_meeting(Path(workdir))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    ogg = args.out_dir / "demo_meeting.ogg"
    sf.write(str(ogg), audio, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    txt = args.out_dir / "demo_meeting.txt"
    txt.write_text(script_text(turns, audio.size / SAMPLE_RATE), encoding="utf-8")
    print(f"wrote {ogg} ({ogg.stat().st_size / 1024:.0f} KiB, {audio.size / SAMPLE_RATE:.1f} s) and {txt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
