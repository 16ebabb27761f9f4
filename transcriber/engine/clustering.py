"""Online speaker clustering of turn embeddings, with an end-of-stream refinement.

Live: each turn's embedding goes to the most similar speaker centroid (running
weighted mean of unit embeddings, weight = speech seconds) or opens a new speaker.
At the end: agglomerative clustering with average linkage over all turns, whose
clusters are renamed after the live ids they overlap most, so that turns the
refinement does not move keep the speaker id the user already saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.68
"""Cosine similarity below which a turn opens a new speaker (and at refine: stops merging).

Measured with SpeakerEncoder (resemblyzer GE2E) on ../shared/data, cosine of pairs:
  speaker_only (5 speakers x 10), whole utterances: same 0.884 +- 0.044, different
    0.557 +- 0.058, EER 0.0 %; with the 7 multi-utterance speakers of utterances.jsonl
    (ARCTIC, LibriVox, LJ, VCTK, LibriSpeech): same 0.879, different 0.553, EER 1.2 %.
  1.5 s pieces, same speaker only across utterances: same 0.721 +- 0.070, different
    0.473 +- 0.069, EER 4.6 % (at 0.59).
  1.5-4 s pieces, 120 speakers: same 0.796 +- 0.073, different 0.513 +- 0.080, EER 4.4 %
    (at 0.66).
Simulated meetings, 500 each: 3-5 speakers x 3-8 turns of 1.5-4 s in random order,
weight = seconds; accuracy = share of speech with the right speaker after the best
mapping; "count" = share of meetings with the right number of speakers.
  threshold              0.62  0.64  0.66  0.68  0.70  0.72
  multi-utterance speakers (8 with >= 4 pieces, turns from several utterances):
    online accuracy %    88.0  92.0  95.0  96.9  96.9  95.9   count % 51 64 75 77 65 48
    refine accuracy %    94.8  96.6  98.2  98.8  98.1  95.9   count % 74 82 87 83 69 42
  any of 120 speakers (most with one utterance):
    online accuracy %    82.1  87.0  90.7  93.1  94.7  95.1   count % 44 51 56 59 59 53
    refine accuracy %    90.0  92.6  94.4  96.1  96.8  96.4   count % 55 55 58 61 63 54
  with fixed_speakers = true count, at 0.68: refine 99.6 % (multi), 95.8 % (any).
Same with whole utterances (9 speakers with >= 3, median 5 s) as turns, 3-5 x 4:
  threshold              0.66  0.68  0.70  0.72  0.75
    online accuracy %    94.8  97.4  98.5  98.2  98.0   count % 80 78 69 44 36
    refine accuracy %    99.6 100.0  98.7  97.8  97.8   count % 98 100 55 28 28
Below the optimum, different speakers merge; above it, one speaker splits (short
turns of one voice are only ~0.72-0.80 alike). 0.68 is best or within 0.7 point of it
in every row, and the same value serves online (similarity to a centroid) and refine
(average pairwise similarity between clusters). Longer turns give higher
similarities for every pair, so live the errors shift from splits (short turns) to
merges of like voices (long turns); refine repairs most of both.
"""


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(_unit(a) @ _unit(b))


class OnlineSpeakerClustering:
    """Speaker ids "S1", "S2", ... in order of first appearance.

    threshold: cosine similarity (to a centroid live; average pairwise at refine) at
        or above which a turn joins a speaker.
    max_speakers: never open more speakers than this (a turn then joins the nearest).
    fixed_speakers: the known number of speakers: caps the live pass like
        max_speakers and makes refine produce exactly this many (fewer only if there
        are fewer turns).
    """

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        max_speakers: int | None = None,
        fixed_speakers: int | None = None,
    ):
        self.threshold = threshold
        self.max_speakers = max_speakers
        self.fixed_speakers = fixed_speakers
        self._sums: list[np.ndarray] = []  # weighted sums of unit embeddings, one per speaker
        self._weights: list[float] = []
        self.labels: list[str] = []  # the live id of every assigned turn, in order

    @property
    def n_speakers(self) -> int:
        return len(self._sums)

    def _cap(self) -> int | None:
        caps = [c for c in (self.max_speakers, self.fixed_speakers) if c is not None]
        return min(caps) if caps else None

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine similarity of one embedding to each speaker's centroid."""
        if not self._sums:
            return np.zeros(0)
        return _unit(np.stack(self._sums)) @ _unit(embedding)

    def assign(self, embedding: np.ndarray, weight: float = 1.0) -> str:
        """The speaker of one turn; updates that speaker's centroid."""
        x = _unit(embedding)
        # A zero-length turn still counts a little, so that it can open a speaker.
        weight = max(float(weight), 1e-3)
        sims = self.similarities(x)
        cap = self._cap()
        opens = len(sims) == 0 or (sims.max() < self.threshold and (cap is None or len(sims) < cap))
        if opens:
            self._sums.append(weight * x)
            self._weights.append(weight)
            index = len(self._sums) - 1
        else:
            index = int(np.argmax(sims))
            self._sums[index] = self._sums[index] + weight * x
            self._weights[index] += weight
        label = f"S{index + 1}"
        self.labels.append(label)
        return label

    def refine(
        self,
        embeddings: Sequence[np.ndarray],
        weights: Sequence[float],
        labels: Sequence[str] | None = None,
        threshold: float | None = None,
        min_cluster_weight: float = 0.0,
        small_cluster_threshold: float = 0.0,
        cannot_link: Sequence[tuple[int, int]] = (),
    ) -> list[str]:
        """Labels of all turns after agglomerative clustering (average linkage, cosine).

        labels: the live ids of these turns, to keep; by default those that assign()
        gave, when the turns are the ones it saw. Clusters are matched to live ids by
        the largest overlap in weight; a cluster left unmatched gets a new id.
        threshold: overrides the live threshold; whole turns are longer than live
        pieces and longer audio raises every pair's similarity.
        """
        n = len(embeddings)
        if n == 0:
            return []
        if labels is None and len(self.labels) == n:
            labels = self.labels
        w = np.asarray(weights, dtype=np.float64)
        x = np.stack(embeddings)
        threshold = self.threshold if threshold is None else threshold
        clusters = agglomerate(
            x,
            w,
            threshold,
            self.max_speakers,
            self.fixed_speakers,
            min_cluster_weight,
            small_cluster_threshold,
            cannot_link,
        )
        return _rename(clusters, w, labels)


def _closest_small_pair(
    dist: np.ndarray, w: np.ndarray, owner: np.ndarray, min_weight: float
) -> tuple[int, int] | None:
    """The closest pair of active clusters in which one weighs less than ``min_weight``."""
    active = np.unique(owner)
    small = active[w[active] < min_weight]
    if len(small) == 0 or len(active) < 2:
        return None
    rows = dist[small]
    flat = int(np.argmin(rows))
    r, j = divmod(flat, dist.shape[1])
    return int(small[r]), int(j)


def agglomerate(
    embeddings: np.ndarray,
    weights: np.ndarray,
    threshold: float,
    max_speakers: int | None = None,
    fixed_speakers: int | None = None,
    min_cluster_weight: float = 0.0,
    small_cluster_threshold: float = 0.0,
    cannot_link: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Cluster index (0..k-1, in order of first appearance) of each row.

    Weighted average linkage: the distance of two clusters is the weight-averaged
    cosine distance over all their pairs, so a long turn counts more than a cough.
    Merging stops when the closest pair is further than 1 - threshold, unless a
    speaker count (fixed, or a maximum that is exceeded) says otherwise. A cluster
    lighter than ``min_cluster_weight`` (seconds of speech: a short turn's embedding
    is noisy) still joins its closest cluster while their similarity is at least
    ``small_cluster_threshold``. Rows named together in ``cannot_link`` never end
    up in one cluster (their distance is infinite, and average linkage carries that
    to every cluster that holds one of them). O(n^2) per merge in numpy: fine for the few
    hundred turns of a meeting.
    """
    n = len(embeddings)
    x = _unit(embeddings)
    w = np.maximum(weights.astype(np.float64), 1e-3)
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, np.inf)
    for a, b in cannot_link:
        dist[a, b] = dist[b, a] = np.inf
    owner = np.arange(n)  # the active cluster that each row belongs to
    count = n
    target = None if fixed_speakers is None else max(1, min(fixed_speakers, n))
    while count > 1:
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        closest = dist[i, j]
        if not np.isfinite(closest):
            break
        if target is not None:
            if count <= target:
                break
        elif closest > 1.0 - threshold and (max_speakers is None or count <= max_speakers):
            small = _closest_small_pair(dist, w, owner, min_cluster_weight)
            if small is None or dist[small] > 1.0 - small_cluster_threshold:
                break
            i, j = small
            if not np.isfinite(dist[i, j]):
                break
        # Lance-Williams update for (weighted) average linkage; j merges into i.
        merged = (w[i] * dist[i] + w[j] * dist[j]) / (w[i] + w[j])
        dist[i, :] = merged
        dist[:, i] = merged
        dist[i, i] = np.inf
        dist[j, :] = np.inf
        dist[:, j] = np.inf
        w[i] += w[j]
        owner[owner == j] = i
        count -= 1
    _, first, inverse = np.unique(owner, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # renumber clusters by first appearance
    return order[inverse]


def _rename(clusters: np.ndarray, weights: np.ndarray, labels: Sequence[str] | None) -> list[str]:
    """Speaker ids for cluster indices, reusing the live ids they overlap most.

    Greedy on the largest overlaps (in weight); a cluster left without a live id takes
    a live id that no cluster kept, so the count of ids does not grow past the live
    one, and only beyond that a new id.
    """
    k = int(clusters.max()) + 1
    names: dict[int, str] = {}
    live = list(dict.fromkeys(labels)) if labels is not None else []
    if live:
        column = {label: s for s, label in enumerate(live)}
        overlap = np.zeros((k, len(live)))
        np.add.at(overlap, (clusters, [column[label] for label in labels]), np.maximum(weights, 1e-3))
        for flat in np.argsort(-overlap, axis=None, kind="stable"):
            c, s = (int(v) for v in np.unravel_index(flat, overlap.shape))
            if overlap[c, s] > 0 and c not in names and live[s] not in names.values():
                names[c] = live[s]
    spare = [label for label in live if label not in names.values()]
    numbers = [int(label[1:]) for label in live if label[1:].isdigit()]
    next_number = max(numbers, default=0) + 1
    for c in range(k):  # clusters are numbered by first appearance, so new ids are too
        if c not in names:
            if spare:
                names[c] = spare.pop(0)
            else:
                names[c] = f"S{next_number}"
                next_number += 1
    return [names[c] for c in clusters.tolist()]
