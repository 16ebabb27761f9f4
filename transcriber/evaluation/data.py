"""The shared evaluation data: where it lives and what the manifests say.

The recordings lie beside the checkout in ``../shared/data`` (the environment
variable ``TRANSCRIBER_DATA`` points elsewhere) and are read in place, never
copied into the repository. Every time is in seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ENV_VAR = "TRANSCRIBER_DATA"
SAMPLE_RATE = 16_000
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


class SharedDataMissing(FileNotFoundError):
    """The shared evaluation data (recordings and manifests) cannot be found."""

    def __init__(self, path: Path, what: str = "utterances.jsonl") -> None:
        self.path = path
        super().__init__(
            f"Shared evaluation data not found: {path / what} does not exist. "
            f"The recordings live beside the checkout in ../shared/data; "
            f"set {ENV_VAR}=/path/to/data to use another folder."
        )


@dataclass(frozen=True)
class Utterance:
    """One single-speaker recording with its exact transcript."""

    id: str
    speaker: str
    path: Path
    duration_s: float
    text: str
    source: str = ""


@dataclass(frozen=True)
class SessionRecord:
    """A real multi-speaker recording with reference speaker turns."""

    uri: str
    path: Path
    duration_s: float
    n_speakers: int
    rttm_path: Path
    uem_path: Path | None = None
    stm_path: Path | None = None
    speaker_text_path: Path | None = None  # ``<speaker>\t<all words>`` per line, for cpWER
    note: str = ""


@dataclass(frozen=True)
class NoiseRecord:
    """A background-noise recording (real or synthetic)."""

    name: str
    path: Path
    duration_s: float
    kind: str


@dataclass(frozen=True)
class SpeakerSegment:
    """A stretch of speech by one speaker (an RTTM line)."""

    speaker: str
    start: float  # seconds
    end: float  # seconds

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class StmSegment:
    """A transcribed segment of an STM file."""

    speaker: str
    start: float  # seconds
    end: float  # seconds
    text: str


def data_dir(required: bool = True) -> Path:
    """The shared data folder; raises ``SharedDataMissing`` when absent and ``required``."""
    override = os.environ.get(ENV_VAR)
    path = Path(override).expanduser() if override else DEFAULT_DATA_DIR
    if required and not (path / "utterances.jsonl").is_file():
        raise SharedDataMissing(path)
    return path


def data_available() -> bool:
    return (data_dir(required=False) / "utterances.jsonl").is_file()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SharedDataMissing(path.parent, path.name)
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_utterances(root: Path | None = None) -> list[Utterance]:
    root = root or data_dir()
    return [
        Utterance(
            id=str(row["id"]),
            speaker=str(row["speaker"]),
            path=root / row["path"],
            duration_s=float(row["duration_s"]),
            text=str(row["text"]),
            source=str(row.get("source", "")),
        )
        for row in _read_jsonl(root / "utterances.jsonl")
    ]


def two_pieces_of_each_utterance(seconds: float, root: Path | None = None) -> tuple[list[np.ndarray], list[str]]:
    """Two disjoint pieces of ``seconds`` (0.5 s in from either end) of every SAMPLE_RATE
    mono utterance long enough, with its speaker: pairs of one speaker from one
    recording, pairs of two from many voices (speaker-encoder error rates)."""
    pieces, speakers = [], []
    size, margin = int(seconds * SAMPLE_RATE), SAMPLE_RATE // 2
    for utterance in load_utterances(root):
        audio, rate = sf.read(utterance.path, dtype="float32")
        if rate != SAMPLE_RATE or audio.ndim > 1 or len(audio) < 2 * size + 2 * margin:
            continue
        pieces += [audio[margin : margin + size], audio[-margin - size : -margin]]
        speakers += [utterance.speaker] * 2
    return pieces, speakers


def scored_utterances(utterances: list[Utterance], count: int = 60, seed: int = 0) -> list[Utterance]:
    """The utterances the benchmarks score (``count`` drawn with ``seed`` from all of
    them, in id order); whatever trains on shared audio leaves these out."""
    ordered = sorted(utterances, key=lambda u: u.id)
    count = min(count, len(ordered))
    picked = sorted(np.random.default_rng(seed).choice(len(ordered), size=count, replace=False))
    return [ordered[int(i)] for i in picked]


def heldout_utterance_ids(count: int = 60, seed: int = 0) -> set[str]:
    return {u.id for u in scored_utterances(load_utterances(), count, seed)}


def load_speaker_only(root: Path | None = None) -> list[tuple[str, Path]]:
    """(speaker, path) of the utterances that come with speaker labels only."""
    return [(u.speaker, u.path) for u in load_speaker_only_utterances(root)]


def load_speaker_only_utterances(root: Path | None = None) -> list[Utterance]:
    """``speaker_only.jsonl`` as utterances without transcripts (``text`` empty): 10
    of each speaker, enough for long meetings of a few voices (diarization only)."""
    root = root or data_dir()
    return [
        Utterance(
            id=Path(row["path"]).stem,
            speaker=str(row["speaker"]),
            path=root / row["path"],
            duration_s=float(row["duration_s"]),
            text="",
            source=str(row.get("source", "")),
        )
        for row in _read_jsonl(root / "speaker_only.jsonl")
    ]


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _session_from_row(root: Path, row: dict[str, Any]) -> SessionRecord:
    audio = root / row["path"]
    stem = audio.with_suffix("")
    return SessionRecord(
        uri=str(row["uri"]),
        path=audio,
        duration_s=float(row["duration_s"]),
        n_speakers=int(row["n_speakers"]),
        rttm_path=stem.with_suffix(".rttm"),
        uem_path=_existing(stem.with_suffix(".uem")),
        stm_path=_existing(stem.with_suffix(".stm")),
        speaker_text_path=_existing(stem.with_suffix(".spk.txt")),
        note=str(row.get("note", "")),
    )


def load_sessions(root: Path | None = None) -> list[SessionRecord]:
    root = root or data_dir()
    return [_session_from_row(root, row) for row in _read_jsonl(root / "sessions.jsonl")]


def load_noise(root: Path | None = None) -> list[NoiseRecord]:
    root = root or data_dir()
    return [
        NoiseRecord(
            name=Path(row["path"]).stem,
            path=root / row["path"],
            duration_s=float(row["duration_s"]),
            kind=str(row.get("kind", "")),
        )
        for row in _read_jsonl(root / "noise.jsonl")
    ]


def load_audio(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples; the shared data is 16 kHz, anything else is refused."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz")
    return audio.mean(axis=1).astype(np.float32)


def read_rttm(path: Path | str) -> list[SpeakerSegment]:
    """``SPEAKER <uri> <chan> <start> <duration> <NA> <NA> <speaker> ...`` lines."""
    segments = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            segments.append(SpeakerSegment(fields[7], start, start + duration))
    return segments


def rttm_line(session_id: str, speaker: str, start: float, end: float) -> str:
    """One RTTM ``SPEAKER`` line (times in seconds, duration = end - start)."""
    return f"SPEAKER {session_id} 1 {start:.3f} {end - start:.3f} <NA> <NA> {speaker} <NA> <NA>\n"


def read_uem(path: Path | str) -> list[tuple[float, float]]:
    """``<uri> <chan> <start> <end>`` lines, as (start, end) in seconds."""
    regions = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            regions.append((float(fields[2]), float(fields[3])))
    return regions


def read_stm(path: Path | str) -> list[StmSegment]:
    """``<uri> <chan> <speaker> <start> <end> <text>`` lines."""
    segments = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and not line.startswith(";;"):
            text = fields[5] if len(fields) > 5 else ""
            segments.append(StmSegment(fields[2], float(fields[3]), float(fields[4]), text))
    return segments


def read_speaker_text(path: Path | str) -> dict[str, str]:
    """``<speaker>\\t<text>`` lines: every word a speaker says, in order."""
    texts = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            speaker, text = line.split("\t", 1)
            texts[speaker.strip()] = text.strip()
    return texts
