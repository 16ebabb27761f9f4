"""Scoring: WER, cpWER, ORC-WER (meeteval), DER (own numpy implementation).

Texts are normalized on both sides with Whisper's ``EnglishTextNormalizer``
before any word error rate. Times are seconds. Segment lists are anything
with ``speaker``, ``start`` and ``end`` attributes (``SpeakerSegment``); SegLST
is meeteval's format: dicts with ``session_id``, ``speaker``, ``start_time``,
``end_time`` and ``words``.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from transcriber.evaluation.data import SpeakerSegment, rttm_line
from transcriber.transcript.model import Transcript

SegLST = list[dict[str, Any]]


class Timed(Protocol):
    speaker: str
    start: float
    end: float


# --------------------------------------------------------------------------- text


@lru_cache(maxsize=1)
def _normalizer() -> Any:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize_text(text: str) -> str:
    """Whisper's English normalization (lower case, no punctuation, spelled numbers as digits...)."""
    return " ".join(_normalizer()(text).split())


@dataclass(frozen=True)
class ErrorCounts:
    """Word errors against ``words`` reference words."""

    errors: int
    words: int
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def rate(self) -> float:
        if self.words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.words

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            errors=self.errors + other.errors,
            words=self.words + other.words,
            substitutions=self.substitutions + other.substitutions,
            deletions=self.deletions + other.deletions,
            insertions=self.insertions + other.insertions,
        )


ZERO_ERRORS = ErrorCounts(0, 0)


def wer(refs: Sequence[str] | str, hyps: Sequence[str] | str) -> ErrorCounts:
    """Corpus WER over pairs of texts (jiwer), both sides normalized."""
    import jiwer

    refs = [refs] if isinstance(refs, str) else list(refs)
    hyps = [hyps] if isinstance(hyps, str) else list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(normalize_text(r), normalize_text(h)) for r, h in zip(refs, hyps, strict=True)]
    total = ZERO_ERRORS
    scored = [(r, h) for r, h in pairs if r]
    for _, h in (p for p in pairs if not p[0]):  # jiwer refuses empty references
        total = total + ErrorCounts(len(h.split()), 0, insertions=len(h.split()))
    if scored:
        out = jiwer.process_words([r for r, _ in scored], [h for _, h in scored])
        errors = out.substitutions + out.deletions + out.insertions
        words = out.substitutions + out.deletions + out.hits
        total = total + ErrorCounts(errors, words, out.substitutions, out.deletions, out.insertions)
    return total


# --------------------------------------------------------------------------- meeting WERs (meeteval)


def normalize_seglst(segments: Iterable[Mapping[str, Any]]) -> SegLST:
    """A copy of a SegLST with normalized ``words``."""
    return [{**seg, "words": normalize_text(str(seg["words"]))} for seg in segments]


def _to_meeteval(segments: Iterable[Mapping[str, Any]]) -> Any:
    from meeteval.io import SegLST as MeetevalSegLST

    return MeetevalSegLST(normalize_seglst(segments))


def _sum_meeteval(per_session: Mapping[str, Any]) -> ErrorCounts:
    total = ZERO_ERRORS
    assignments = {}
    for session, result in per_session.items():
        total = total + ErrorCounts(
            errors=int(result.errors),
            words=int(result.length),
            substitutions=int(result.substitutions),
            deletions=int(result.deletions),
            insertions=int(result.insertions),
        )
        assignments[session] = result.assignment
    return ErrorCounts(**{**total.__dict__, "details": {"assignment": assignments}})


def cpwer(reference_seglst: Iterable[Mapping[str, Any]], hypothesis_seglst: Iterable[Mapping[str, Any]]) -> ErrorCounts:
    """Concatenated minimum-permutation WER (meeteval), summed over sessions."""
    import meeteval

    result = meeteval.wer.cpwer(_to_meeteval(reference_seglst), _to_meeteval(hypothesis_seglst))
    return _sum_meeteval(result)


EXACT_ORC_MAX_STREAMS = 5


def orc_wer(
    reference_seglst: Iterable[Mapping[str, Any]], hypothesis_seglst: Iterable[Mapping[str, Any]]
) -> ErrorCounts:
    """Optimal reference combination WER (meeteval): speaker labels of the hypothesis are
    ignored. Over more than ``EXACT_ORC_MAX_STREAMS`` hypothesis speakers, meeteval's
    greedy search (an upper bound): the exact search grows with the product of the
    streams' lengths (six speakers of a 50 s meeting took more than 24 GB)."""
    import meeteval

    hypothesis_seglst = list(hypothesis_seglst)
    streams = Counter(session for session, _ in {(s["session_id"], s["speaker"]) for s in hypothesis_seglst})
    if max(streams.values(), default=0) > EXACT_ORC_MAX_STREAMS:
        orc = meeteval.wer.greedy_orcwer
    else:
        orc = meeteval.wer.orcwer
    return _sum_meeteval(orc(_to_meeteval(reference_seglst), _to_meeteval(hypothesis_seglst)))


# --------------------------------------------------------------------------- DER


@dataclass(frozen=True)
class DerResult:
    """Diarization error, every duration in seconds of speaker time."""

    missed: float
    false_alarm: float
    confusion: float
    total: float  # scored reference speaker time (overlapped speech counts once per speaker)
    mapping: dict[str, str] = field(default_factory=dict, compare=False)  # reference -> hypothesis

    @property
    def errors(self) -> float:
        return self.missed + self.false_alarm + self.confusion

    @property
    def rate(self) -> float:
        if self.total == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.total

    def __add__(self, other: DerResult) -> DerResult:
        return DerResult(
            self.missed + other.missed,
            self.false_alarm + other.false_alarm,
            self.confusion + other.confusion,
            self.total + other.total,
        )


ZERO_DER = DerResult(0.0, 0.0, 0.0, 0.0)


def _merge(intervals: Iterable[tuple[float, float]]) -> np.ndarray:
    """Union of intervals as an (n, 2) array of sorted, disjoint [start, end)."""
    merged: list[list[float]] = []
    for start, end in sorted((float(s), float(e)) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.array(merged, dtype=np.float64).reshape(-1, 2)


def _inside(points: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Which points lie in the union of disjoint sorted intervals."""
    if len(intervals) == 0:
        return np.zeros(len(points), dtype=bool)
    index = np.searchsorted(intervals[:, 0], points, side="right") - 1
    safe = np.clip(index, 0, None)
    return (index >= 0) & (points < intervals[safe, 1])


def _by_speaker(segments: Iterable[Timed]) -> dict[str, np.ndarray]:
    grouped: dict[str, list[tuple[float, float]]] = {}
    for seg in segments:
        grouped.setdefault(str(seg.speaker), []).append((seg.start, seg.end))
    return {speaker: _merge(spans) for speaker, spans in sorted(grouped.items())}


def _collar_zones(reference: Mapping[str, np.ndarray], collar: float) -> np.ndarray:
    if collar <= 0:
        return np.zeros((0, 2))
    edges = [t for spans in reference.values() for t in spans.ravel()]
    return _merge((t - collar, t + collar) for t in edges)


def _activity(speakers: Mapping[str, np.ndarray], mids: np.ndarray) -> np.ndarray:
    if not speakers:
        return np.zeros((0, len(mids)), dtype=bool)
    return np.stack([_inside(mids, spans) for spans in speakers.values()])


def _mapping(ref_act: np.ndarray, hyp_act: np.ndarray, weights: np.ndarray) -> list[tuple[int, int]]:
    """Reference/hypothesis speaker pairs maximising their overlap (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    if ref_act.shape[0] == 0 or hyp_act.shape[0] == 0:
        return []
    overlap = (ref_act * weights) @ hyp_act.T.astype(np.float64)
    rows, cols = linear_sum_assignment(-overlap)
    return [(r, c) for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0]


def der(
    reference_rttm_segments: Iterable[Timed],
    hypothesis_segments: Iterable[Timed],
    uem: Sequence[tuple[float, float]] | None = None,
    collar: float = 0.25,
) -> DerResult:
    """Diarization error rate, NIST style.

    * Same-speaker segments are merged first; overlapping speech is scored per
      speaker (two reference speakers at once = two seconds per second).
    * ``collar`` seconds either side of every reference speaker boundary are
      not scored; neither is anything outside ``uem`` (all time when None).
    * Speakers are mapped one-to-one to maximise overlap inside the scored
      time (Hungarian algorithm); per stretch,
      missed = max(0, n_ref - n_hyp), false alarm = max(0, n_hyp - n_ref),
      confusion = min(n_ref, n_hyp) - n_correctly_mapped.
    """
    reference = _by_speaker(reference_rttm_segments)
    hypothesis = _by_speaker(hypothesis_segments)
    collars = _collar_zones(reference, collar)
    edges = [t for group in (reference, hypothesis) for spans in group.values() for t in spans.ravel()]
    edges += list(collars.ravel()) + [t for region in (uem or []) for t in region]
    points = np.unique(np.array(edges, dtype=np.float64))
    if len(points) < 2:
        return ZERO_DER
    mids, widths = (points[:-1] + points[1:]) / 2, np.diff(points)
    scored = ~_inside(mids, collars)
    if uem is not None:
        scored &= _inside(mids, _merge(uem))
    weights = widths * scored
    ref_act, hyp_act = _activity(reference, mids), _activity(hypothesis, mids)
    pairs = _mapping(ref_act, hyp_act, weights)
    n_ref, n_hyp = ref_act.sum(axis=0), hyp_act.sum(axis=0)
    n_correct = sum((ref_act[r] & hyp_act[h]).astype(np.int64) for r, h in pairs) if pairs else 0
    ref_names, hyp_names = list(reference), list(hypothesis)
    return DerResult(
        missed=float(np.sum(weights * np.maximum(n_ref - n_hyp, 0))),
        false_alarm=float(np.sum(weights * np.maximum(n_hyp - n_ref, 0))),
        confusion=float(np.sum(weights * (np.minimum(n_ref, n_hyp) - n_correct))),
        total=float(np.sum(weights * n_ref)),
        mapping={ref_names[r]: hyp_names[h] for r, h in pairs},
    )


def md_eval_script() -> Path | None:
    """md-eval-22.pl if it is installed (meeteval would otherwise download it: we never do)."""
    found = shutil.which("md-eval-22.pl")
    if found:
        return Path(found)
    try:
        import meeteval.der.md_eval as md_eval
    except ImportError:
        return None
    bundled = Path(md_eval.__file__).parent / "md-eval-22.pl"
    return bundled if bundled.is_file() and shutil.which("perl") else None


def md_eval_der(
    reference_rttm_segments: Iterable[Timed],
    hypothesis_segments: Iterable[Timed],
    uem: Sequence[tuple[float, float]] | None = None,
    collar: float = 0.25,
    session_id: str = "session",
) -> DerResult | None:
    """The same DER from NIST md-eval-22.pl through meeteval; None when the script is absent."""
    if md_eval_script() is None:
        return None
    from meeteval.der import md_eval_22
    from meeteval.io import RTTM, UEM

    ref = RTTM.parse(segments_to_rttm(reference_rttm_segments, session_id))
    hyp = RTTM.parse(segments_to_rttm(hypothesis_segments, session_id))
    uem_lines = UEM.parse("".join(f"{session_id} 1 {s:.3f} {e:.3f}\n" for s, e in uem)) if uem else None
    result = md_eval_22(ref, hyp, collar=collar, uem=uem_lines)
    return DerResult(
        missed=float(result.missed_speaker_time),
        false_alarm=float(result.falarm_speaker_time),
        confusion=float(result.speaker_error_time),
        total=float(result.scored_speaker_time),
    )


# --------------------------------------------------------------------------- converters


def sign_test(better: int, worse: int) -> float:
    """Two-sided sign test: how likely at least this lopsided a split of ``better`` and
    ``worse`` items is when a change does nothing (ties left out). A change that helps
    some meetings and hurts as many (17 to 15) is noise, whatever the total says."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(better, worse) + 1)) / 2**n
    return min(1.0, 2 * tail)


def transcript_to_seglst(transcript: Transcript, session_id: str) -> SegLST:
    """One SegLST segment per turn (the turn's speaker id, times and text)."""
    return [
        {
            "session_id": session_id,
            "speaker": turn.speaker,
            "start_time": turn.start,
            "end_time": turn.end,
            "words": turn.text,
        }
        for turn in transcript.sorted_turns()
        if turn.text.strip()
    ]


def transcript_to_segments(transcript: Transcript) -> list[SpeakerSegment]:
    """Where each speaker is heard, as the RTTM export gives it (``Turn.speech_spans``)."""
    return [
        SpeakerSegment(turn.speaker, start, end)
        for turn in transcript.sorted_turns()
        for start, end in turn.speech_spans()
    ]


def text_to_seglst(text: str, session_id: str, speaker: str = "spk0", start: float = 0.0, end: float = 0.0) -> SegLST:
    """All words under one speaker (e.g. a transcriber without diarization)."""
    return [{"session_id": session_id, "speaker": speaker, "start_time": start, "end_time": end, "words": text}]


def speaker_text_to_seglst(texts: Mapping[str, str], session_id: str, duration: float = 0.0) -> SegLST:
    """``{speaker: all words}`` (e.g. ``sample.spk.txt``) as one segment per speaker, for cpWER."""
    return [text_to_seglst(text, session_id, speaker, 0.0, duration)[0] for speaker, text in texts.items()]


def segments_to_rttm(segments: Iterable[Timed], session_id: str) -> str:
    return "".join(rttm_line(session_id, seg.speaker, seg.start, seg.end) for seg in segments if seg.end > seg.start)


def speaker_count(segments: Iterable[Timed]) -> int:
    return len({seg.speaker for seg in segments})


def speaker_count_correct(reference_segments: Iterable[Timed], hypothesis: Transcript | Iterable[Timed] | int) -> bool:
    """Whether the hypothesis found as many speakers as the reference has."""
    if isinstance(hypothesis, Transcript):
        found = len({turn.speaker for turn in hypothesis.turns if turn.words or turn.text.strip()})
    elif isinstance(hypothesis, int):
        found = hypothesis
    else:
        found = speaker_count(hypothesis)
    return found == speaker_count(reference_segments)
