"""Train the overlap detector (speakers talking: 0, 1, 2+) on simulated mixtures.

    python training/train_overlap.py --out models/overlap/detector

Data: pieces of the shared utterances whose speakers no benchmark or test meeting
uses (seeds 0-19 and 1000-1011 choose the meetings' speakers; all of them are left
out), and the speaker-only utterances. Each example is 8 s: one speaker
alone (15 %), or two or three pieces of different speakers placed so that they
overlap by anything from a gap of 1 s to one piece inside the other; speakers
at -26 dBFS active level +-6 dB, background noise from ../shared/data/noise at
5-30 dB SNR on half of them, overall level -12..+6 dB.

Labels come from the pieces themselves, before mixing: a piece's frame is
speech when its energy is within 35 dB of the piece's loud frames; pauses
under 0.3 s are closed (a speaker who pauses between words is still talking);
a frame's label is the number of pieces speaking, capped at 2. The network
predicts frame t's label at frame t + delay (see transcriber/engine/overlap.py).

15 % of the training speakers are held out to report frame accuracy and the
overlap class's precision and recall.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transcriber.engine.overlap import (  # noqa: E402
    OVERLAP,
    LogMelFrames,
    OverlapDetector,
    OverlapDimensions,
)
from transcriber.evaluation.data import load_audio, load_noise, load_speaker_only, load_utterances  # noqa: E402
from transcriber.evaluation.simulate import choose_speakers  # noqa: E402
from transcriber.whisper.audio_features import HOP_LENGTH, N_FFT, SAMPLE_RATE  # noqa: E402

EXAMPLE_SECONDS = 8.0
MEETING_SEEDS = (*range(20), *range(1000, 1012))
ACTIVE_BELOW_LOUD_DB = 35.0
CLOSE_PAUSES_SECONDS = 0.3


def meeting_speakers() -> set[str]:
    """Every speaker a benchmark or test meeting (3 or 4 speakers) may use."""
    utterances = load_utterances()
    speakers: set[str] = set()
    for seed in MEETING_SEEDS:
        for count in (2, 3, 4):
            speakers |= set(choose_speakers(utterances, count, np.random.default_rng(seed), 8.0, 4))
    return speakers


def speaker_audio() -> dict[str, list[np.ndarray]]:
    """Training audio by speaker: utterances of speakers outside every meeting."""
    excluded = meeting_speakers()
    by_speaker: dict[str, list[np.ndarray]] = {}
    for utterance in load_utterances():
        if utterance.speaker not in excluded:
            by_speaker.setdefault(utterance.speaker, []).append(load_audio(utterance.path))
    for speaker, path in load_speaker_only():
        by_speaker.setdefault(f"only-{speaker}", []).append(load_audio(path))
    return by_speaker


def frame_energy_db(audio: np.ndarray) -> np.ndarray:
    if len(audio) < N_FFT:
        return np.full(0, -120.0)
    frames = np.lib.stride_tricks.sliding_window_view(audio, N_FFT)[::HOP_LENGTH]
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_frames(audio: np.ndarray) -> np.ndarray:
    """Which frames of one clean piece are speech (pauses under 0.3 s closed)."""
    energy = frame_energy_db(audio)
    if len(energy) == 0:
        return np.zeros(0, dtype=bool)
    active = energy > max(np.percentile(energy, 95) - ACTIVE_BELOW_LOUD_DB, -70.0)
    gap = int(CLOSE_PAUSES_SECONDS * SAMPLE_RATE / HOP_LENGTH)
    indices = np.flatnonzero(active)
    for a, b in zip(indices[:-1], indices[1:], strict=False):
        if 1 < b - a <= gap:
            active[a:b] = True
    return active


def active_rms(audio: np.ndarray) -> float:
    energy = frame_energy_db(audio)
    loud = energy[energy > np.percentile(energy, 95) - ACTIVE_BELOW_LOUD_DB] if len(energy) else energy
    return float(10 ** (np.mean(loud) / 20)) if len(loud) else 1e-3


class MixtureMaker:
    def __init__(self, by_speaker: dict[str, list[np.ndarray]], noises: list[np.ndarray], rng: random.Random):
        self.by_speaker = by_speaker
        self.speakers = sorted(by_speaker)
        self.noises = noises
        self.rng = rng
        self.length = int(EXAMPLE_SECONDS * SAMPLE_RATE)
        self.single_share = 0.15

    def piece(self, speaker: str) -> np.ndarray:
        audio = self.rng.choice(self.by_speaker[speaker])
        seconds = self.rng.uniform(1.0, 6.0)
        size = min(len(audio), int(seconds * SAMPLE_RATE))
        start = self.rng.randrange(0, len(audio) - size + 1)
        piece = audio[start : start + size]
        gain_db = -26.0 + self.rng.uniform(-6.0, 6.0)
        return piece * (10 ** (gain_db / 20) / active_rms(piece))

    def example(self) -> tuple[np.ndarray, np.ndarray]:
        """(audio, frame labels)."""
        mixture = np.zeros(self.length, dtype=np.float32)
        count = np.zeros((self.length - N_FFT) // HOP_LENGTH + 1, dtype=np.int64)
        speakers = self.rng.sample(self.speakers, 3)
        if self.rng.random() < self.single_share:
            placed = [(speakers[0], self.rng.uniform(0.0, 3.0))]
        else:
            placed = []
            start = self.rng.uniform(0.0, 2.0)
            for index in range(self.rng.choice((2, 2, 3))):
                placed.append((speakers[index % 3], start))
                start += self.rng.uniform(0.3, 4.5)
        for speaker, start in placed:
            piece = self.piece(speaker)
            offset = int(start * SAMPLE_RATE)
            piece = piece[: max(0, self.length - offset)]
            if len(piece) < N_FFT:
                continue
            mixture[offset : offset + len(piece)] += piece
            active = speech_frames(piece)
            first = offset // HOP_LENGTH
            span = min(len(active), len(count) - first)
            count[first : first + span] += active[:span]
        if self.noises and self.rng.random() < 0.5:
            mixture = self.add_noise(mixture)
        mixture *= 10 ** (self.rng.uniform(-12.0, 6.0) / 20)
        peak = np.abs(mixture).max()
        if peak > 0.99:
            mixture *= 0.99 / peak
        return mixture.astype(np.float32), np.minimum(count, OVERLAP)

    def add_noise(self, mixture: np.ndarray) -> np.ndarray:
        noise = self.rng.choice(self.noises)
        repeats = int(np.ceil(len(mixture) / len(noise))) + 1
        noise = np.tile(noise, repeats)
        start = self.rng.randrange(0, len(noise) - len(mixture))
        noise = noise[start : start + len(mixture)]
        speech_level = active_rms(mixture)
        snr_db = self.rng.uniform(5.0, 30.0)
        noise_level = float(np.sqrt(np.mean(noise**2))) + 1e-9
        return mixture + noise * (speech_level / noise_level) * 10 ** (-snr_db / 20)


def batch(maker: MixtureMaker, size: int, features: LogMelFrames) -> tuple[torch.Tensor, torch.Tensor]:
    examples = [maker.example() for _ in range(size)]
    audio = torch.from_numpy(np.stack([a for a, _ in examples]))
    labels = torch.from_numpy(np.stack([c for _, c in examples]))
    return features(audio), labels


def loss_and_logits(
    detector: OverlapDetector, frames: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The network at frame t + delay is scored on frame t's label."""
    delay = detector.dims.delay_frames
    context = torch.full((frames.shape[0], detector.context_frames, frames.shape[2]), -1.5)
    logits, _ = detector(torch.cat([context, frames], dim=1))
    logits = logits[:, delay:]
    targets = labels[:, : logits.shape[1]]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), weight=weights)
    return loss, logits, targets


def scores(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    predicted = logits.argmax(-1)
    overlap_predicted = predicted == OVERLAP
    overlap_true = targets == OVERLAP
    hits = (overlap_predicted & overlap_true).sum().item()
    precision = hits / max(1, overlap_predicted.sum().item())
    recall = hits / max(1, overlap_true.sum().item())
    return {
        "frame_accuracy": round((predicted == targets).float().mean().item(), 4),
        "overlap_precision": round(precision, 4),
        "overlap_recall": round(recall, 4),
        "overlap_f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
        "overlap_share": round(overlap_true.float().mean().item(), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "overlap" / "detector")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single-share", type=float, default=0.15, help="examples with one speaker only")
    parser.add_argument("--hidden", type=int, default=OverlapDimensions().hidden)
    parser.add_argument("--channels", type=int, default=OverlapDimensions().channels)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)

    by_speaker = speaker_audio()
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    held_out = set(speakers[: max(3, len(speakers) * 15 // 100)])
    train = MixtureMaker({s: a for s, a in by_speaker.items() if s not in held_out}, [], rng)
    train.noises = [load_audio(n.path) for n in load_noise()]
    train.single_share = args.single_share
    validation_maker = MixtureMaker({s: by_speaker[s] for s in held_out}, train.noises, random.Random(1))
    features = LogMelFrames(OverlapDimensions().n_mels)
    validation = [batch(validation_maker, 25, features) for _ in range(8)]
    print(f"{len(by_speaker) - len(held_out)} training speakers, {len(held_out)} held out", flush=True)

    dims = OverlapDimensions(hidden=args.hidden, channels=args.channels)
    detector = OverlapDetector(dims)
    optimizer = torch.optim.AdamW(detector.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps)
    weights = torch.tensor([1.0, 1.0, 2.0])  # overlap is the rare class and the one that matters
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        detector.train()
        frames, labels = batch(train, args.batch, features)
        loss, _, _ = loss_and_logits(detector, frames, labels, weights)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(detector.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps:
            report = evaluate(detector, validation, weights)
            print(f"step {step} loss {loss.item():.3f} {report} {time.perf_counter() - started:.0f} s", flush=True)
    report = evaluate(detector, validation, weights)
    detector.save(
        args.out,
        {
            "training": {
                "steps": args.steps,
                "batch": args.batch,
                "lr": args.lr,
                "seed": args.seed,
                "single_share": args.single_share,
                "example_seconds": EXAMPLE_SECONDS,
                "speakers": len(by_speaker) - len(held_out),
                "seconds": round(time.perf_counter() - started),
            },
            "held_out_speakers": report,
        },
    )
    print(f"saved {args.out}.pt: {report}")


def evaluate(
    detector: OverlapDetector, validation: list[tuple[torch.Tensor, torch.Tensor]], weights: torch.Tensor
) -> dict[str, float]:
    detector.eval()
    with torch.no_grad():
        outputs = [loss_and_logits(detector, f, labels, weights) for f, labels in validation]
    logits = torch.cat([o[1].reshape(-1, o[1].shape[-1]) for o in outputs])
    targets = torch.cat([o[2].reshape(-1) for o in outputs])
    return {"loss": round(float(np.mean([o[0].item() for o in outputs])), 4), **scores(logits, targets)}


if __name__ == "__main__":
    main()
