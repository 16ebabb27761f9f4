"""End-of-stream resegmentation: split turns where another known voice speaks.

When people leave less than the VAD's pause between turns (LibriCSS 0S: 0.1-0.5 s),
two or three speakers end up in one turn, and the live change detection (one
window a second, two dissimilar windows in a row) misses interjections shorter
than about two seconds. Once the stream is over, every speaker's voice is known:
each turn's sliding windows (1.5 s every 0.5 s, embedded in one batch when the
turn closed) are compared with the speakers' centroids, each word takes the
voice of the window nearest to it, and runs of words in another speaker's voice
become turns of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transcriber.whisper.decoding import TimedWord


@dataclass(frozen=True)
class VoiceWindows:
    """Speaker embeddings of overlapping windows over one turn."""

    times: np.ndarray  # (n,) centre of each window, seconds of stream time
    embeddings: np.ndarray  # (n, d) L2-normalised rows


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
