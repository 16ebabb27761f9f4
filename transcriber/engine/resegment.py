"""End-of-stream resegmentation: split turns where another known voice speaks.

When people leave less than the VAD's pause between turns (LibriCSS 0S: 0.1-0.5 s),
two or three speakers end up in one turn, and the live change detection (one
window a second, two dissimilar windows in a row) misses interjections shorter
than about two seconds. Once the stream is over, every speaker's voice is known:
each turn's sliding windows (1.5 s every 0.5 s, embedded in one batch when the
turn closed) are compared with the speakers' centroids, each word takes the
voice of the window nearest to it, and runs of words in another speaker's voice
become turns of their own. Before that, while no voice is known yet, a turn is
split in a pause where the windows before it and after it are unlike
(``voice_change_in_pause``): two new voices sharing one turn would otherwise
cluster as one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transcriber.whisper.decoding import TimedWord

PAUSE_LOOKBACK_SECONDS = 0.5
# word starts are this loose around a pause
WORD_START_SLACK_SECONDS = 0.05


@dataclass(frozen=True)
class VoiceWindows:
    """Speaker embeddings of overlapping windows over one turn."""

    times: np.ndarray  # (n,) centre of each window, seconds of stream time
    embeddings: np.ndarray  # (n, d) L2-normalised rows
    loudness: Loudness | None = None  # to place a split in the pause between two voices

    def subset(self, mask: np.ndarray) -> VoiceWindows | None:
        return VoiceWindows(self.times[mask], self.embeddings[mask], self.loudness) if mask.any() else None

    def embedding(self) -> np.ndarray:
        """The mean of the windows, unit length."""
        mean = self.embeddings.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def consistency(self) -> float:
        """How alike the windows are to their mean, on average: lower where two voices share them."""
        return float((self.embeddings @ self.embedding()).mean())


@dataclass(frozen=True)
class Loudness:
    """Frame energies of a turn's audio, kept small so that every turn can keep them."""

    start: float  # stream seconds of the first frame
    frame_seconds: float
    db: np.ndarray  # (n,) energy of each frame, dB relative to full scale

    @classmethod
    def of(cls, audio: np.ndarray, start: float, sample_rate: int, frame_seconds: float = 0.02) -> Loudness:
        frame = int(round(frame_seconds * sample_rate))
        n = len(audio) // frame
        power = (audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1)
        return cls(start, frame_seconds, 10 * np.log10(power + 1e-10))

    def pause_seconds(self, start: float, end: float, floor_db: float) -> float:
        """The longest run of frames below ``floor_db`` inside [start, end]."""
        first = max(0, int((start - self.start) / self.frame_seconds))
        last = min(len(self.db), int(np.ceil((end - self.start) / self.frame_seconds)))
        longest = run = 0
        for quiet in self.db[first:last] < floor_db:
            run = run + 1 if quiet else 0
            longest = max(longest, run)
        return longest * self.frame_seconds

    def first_loud(self, start: float, end: float, floor_db: float) -> float | None:
        """The time of the first frame at or above ``floor_db`` inside [start, end]."""
        first = max(0, int((start - self.start) / self.frame_seconds))
        last = min(len(self.db), int(np.ceil((end - self.start) / self.frame_seconds)))
        loud = np.flatnonzero(self.db[first:last] >= floor_db)
        return self.start + (first + int(loud[0])) * self.frame_seconds if len(loud) else None

    @property
    def end(self) -> float:
        return self.start + len(self.db) * self.frame_seconds

    def followed_by(self, later: Loudness) -> Loudness:
        """These frames and a later turn's as one run (a gap between them is silent)."""
        gap = max(0, int(round((later.start - self.end) / self.frame_seconds)))
        return Loudness(self.start, self.frame_seconds, np.concatenate([self.db, np.full(gap, -100.0), later.db]))

    def speech_db(self) -> float:
        """The turn's speech level: loud frames, not the pauses between them."""
        return float(np.percentile(self.db, 80)) if len(self.db) else -100.0


@dataclass(frozen=True)
class Piece:
    """Consecutive words of a turn spoken in one voice."""

    speaker: str
    words: list[TimedWord]


def speaker_centroids(windows: Sequence[VoiceWindows | None], speakers: Sequence[str]) -> dict[str, np.ndarray]:
    """Each speaker's mean window embedding over all of their turns (unit length)."""
    centroids: dict[str, np.ndarray] = {}
    for speaker in dict.fromkeys(speakers):
        rows = [w.embeddings for w, s in zip(windows, speakers, strict=True) if s == speaker and w is not None]
        if rows:
            mean = np.concatenate(rows).mean(axis=0)
            centroids[speaker] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return centroids


def word_voices(
    words: Sequence[TimedWord], windows: VoiceWindows, own: str, centroids: dict[str, np.ndarray], margin: float
) -> list[str]:
    """The speaker of each word: the window nearest its middle names another speaker
    when that speaker is at least ``margin`` more similar than the turn's own."""
    names = list(centroids)
    if own not in centroids or len(names) < 2:
        return [own] * len(words)
    similarity = windows.embeddings @ np.stack([centroids[name] for name in names]).T
    own_index = names.index(own)
    window_voice = []
    for row in similarity:
        best = int(np.argmax(row))
        window_voice.append(names[best] if row[best] - row[own_index] >= margin else own)
    middles = np.array([(w.start + w.end) / 2 for w in words])
    nearest = np.abs(middles[:, None] - windows.times[None, :]).argmin(axis=1)
    return [window_voice[i] for i in nearest]


def voice_pieces(words: Sequence[TimedWord], voices: Sequence[str], own: str, min_words: int) -> list[Piece]:
    """Words grouped into runs of one voice. A run of another voice shorter than
    ``min_words`` (one stray window) goes back to its neighbours."""
    pieces: list[Piece] = []
    for word, voice in zip(words, voices, strict=True):
        if pieces and pieces[-1].speaker == voice:
            pieces[-1].words.append(word)
        else:
            pieces.append(Piece(voice, [word]))
    while len(pieces) > 1:
        short = next((i for i, p in enumerate(pieces) if p.speaker != own and len(p.words) < min_words), None)
        if short is None:
            break
        piece = pieces.pop(short)
        if short > 0:
            pieces[short - 1].words.extend(piece.words)
        else:
            pieces[0].words[:0] = piece.words  # the next piece, now first
        pieces = _joined(pieces)
    return pieces


def _joined(pieces: list[Piece]) -> list[Piece]:
    joined: list[Piece] = []
    for piece in pieces:
        if joined and joined[-1].speaker == piece.speaker:
            joined[-1].words.extend(piece.words)
        else:
            joined.append(piece)
    return joined


def split_in_pause(
    words: Sequence[TimedWord],
    index: int,
    loudness: Loudness | None,
    search: int,
    below_speech_db: float,
    bounds: tuple[int, int] | None = None,
) -> int:
    """Move a split before ``words[index]`` by up to ``search`` words, within
    ``bounds`` (first and last allowed index; default: each side keeps a word), to
    the longest pause: two voices change in a pause, and the windows that found the
    change are too wide to say between which two words."""
    low, high = bounds or (1, len(words) - 1)
    if loudness is None or search <= 0 or low > high:
        return index
    floor = loudness.speech_db() - below_speech_db

    def pause_before(k: int) -> float:
        # word starts come within ~0.3 s of the onset, mostly late: look before it,
        # but only after the word before has begun to sound (a turn's first word is
        # timed from the turn's start, over the silence before it)
        previous = words[k - 1].start
        onset = loudness.first_loud(previous, words[k].start, floor)
        start = max((previous if onset is None else onset) + 0.05, words[k].start - PAUSE_LOOKBACK_SECONDS)
        return loudness.pause_seconds(start, words[k].start + 0.15, floor)

    candidates = range(max(low, index - search), min(high, index + search) + 1)
    best = max(candidates, key=lambda k: (round(pause_before(k), 2), k == index))
    return best if pause_before(best) > pause_before(index) else index


def pauses(loudness: Loudness, below_speech_db: float, min_seconds: float) -> list[tuple[float, float]]:
    """Runs of at least ``min_seconds`` of frames ``below_speech_db`` quieter than the
    turn's speech, between its first and its last loud frame: (start, end) in seconds."""
    quiet = loudness.db < loudness.speech_db() - below_speech_db
    loud = np.flatnonzero(~quiet)
    if len(loud) == 0:
        return []
    found = []
    run_start = None
    for frame in range(int(loud[0]), int(loud[-1]) + 1):
        if quiet[frame] and run_start is None:
            run_start = frame
        elif not quiet[frame] and run_start is not None:
            if (frame - run_start) * loudness.frame_seconds >= min_seconds:
                seconds = loudness.frame_seconds
                found.append((loudness.start + run_start * seconds, loudness.start + frame * seconds))
            run_start = None
    return found


def voice_change_in_pause(
    windows: VoiceWindows,
    pause_spans: Sequence[tuple[float, float]],
    half_window: float,
    threshold: float,
    long_threshold: float | None = None,
    long_windows: int = 5,
    near_seconds: float = 0.0,
    near_threshold: float | None = None,
    near_windows: int = 3,
) -> tuple[float, float] | None:
    """The pause where the voice before and the voice after are most clearly unlike:
    similarity below ``threshold``, or below ``long_threshold`` where both sides have
    at least ``long_windows`` windows (a long side's mean is a steadier voice, and
    one voice on both sides scores higher), or below ``near_threshold`` between the
    ``near_seconds`` right before and right after the pause where both hold
    ``near_windows`` windows (voices that alternate make both whole sides mixtures);
    None if no pause parts two voices. Each side is the mean of the windows that hold
    none of the other side's speech (a window may reach into the pause), so a side
    needs about a window's length of speech."""
    best: tuple[float, tuple[float, float]] | None = None
    for pause in pause_spans:
        before, after = windows_around(windows, pause, half_window)
        if before is None or after is None:
            continue
        bar = threshold
        if long_threshold is not None and min(len(before.times), len(after.times)) >= long_windows:
            bar = long_threshold
        margin = bar - float(before.embedding() @ after.embedding())
        if near_threshold is not None and near_seconds > 0:
            near_before, near_after = windows_near(windows, pause, half_window, near_seconds)
            if (
                near_before is not None
                and near_after is not None
                and min(len(near_before.times), len(near_after.times)) >= near_windows
            ):
                margin = max(margin, near_threshold - float(near_before.embedding() @ near_after.embedding()))
        if best is None or margin > best[0]:
            best = (margin, pause)
    return best[1] if best is not None and best[0] > 0 else None


def windows_around(
    windows: VoiceWindows, pause: tuple[float, float], half_window: float
) -> tuple[VoiceWindows | None, VoiceWindows | None]:
    """The windows before the pause and those after it (None for a side without any)."""
    return windows_near(windows, pause, half_window, math.inf)


def windows_near(
    windows: VoiceWindows, pause: tuple[float, float], half_window: float, seconds: float
) -> tuple[VoiceWindows | None, VoiceWindows | None]:
    """The windows within ``seconds`` before the pause and those within ``seconds`` after
    it (a window may reach into the pause)."""
    before = (windows.times + half_window <= pause[1] + 0.05) & (windows.times - half_window >= pause[0] - seconds)
    after = (windows.times - half_window >= pause[0] - 0.05) & (windows.times + half_window <= pause[1] + seconds)
    return windows.subset(before), windows.subset(after)


def pause_near(
    pause_spans: Sequence[tuple[float, float]], at: float, seconds_before: float, seconds_after: float
) -> tuple[float, float] | None:
    """The pause a change of voice placed at ``at`` most likely happened in: the
    nearest one that ends at most ``seconds_before`` before it or starts at most
    ``seconds_after`` after it (None: no pause there). Not the longest: a comma
    inside a sentence can pause longer than two people do."""
    distance = {p: max(p[0] - at, at - p[1], 0.0) for p in pause_spans}
    near = [p for p in pause_spans if at - seconds_before <= p[1] and p[0] <= at + seconds_after]
    return min(near, key=distance.__getitem__, default=None)


def said_before(words: Sequence[TimedWord], pause: tuple[float, float], slack: float = WORD_START_SLACK_SECONDS) -> int:
    """How many of ``words`` were said before ``pause``: those that start before it. A
    word that starts in the pause was said after it: alignment stretches words over
    a pause, the end of the word before it and the start of the word after it."""
    return sum(1 for w in words if w.start < pause[0] + slack)
