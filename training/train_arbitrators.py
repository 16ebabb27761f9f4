"""Train encoder arbitrators by distillation from the full Whisper encoder (no transcripts).

    python training/train_arbitrators.py --penalty 0.5 --out models/arbitrators/tiny.en-p0.5.pt

Data: windows of 2-10 s (what the streaming transducer decodes) cut from the
shared utterances that the benchmarks do not score (``heldout_utterance_ids``),
the speaker-only utterances, background noise and near-silence; each window gets
1 s of padding, as the recognizer adds. No transcript is read: the teacher (the
full float32 model) decodes each window once, and its tokens are what the
student is scored on.

Loss per window: KL(teacher || student) of the decoder's next-token
distributions along the teacher's tokens, plus ``--feature-weight`` x the
relative squared error of the encoder output, plus ``--penalty`` x the expected
fraction of skippable encoder FLOPs the gates run. Gates are hard in the forward
pass (a sub-block runs for a frame or the frame borrows its kept neighbour's
output, as at inference) and pass the sigmoid's gradient backward
(straight-through): the model trains on exactly the encoder it will run, the
gradient says how much a frame's own output differs from the one it would borrow,
and the compute term sees a smooth probability. Only the arbitrators train;
Whisper stays frozen.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transcriber.evaluation.data import (  # noqa: E402
    heldout_utterance_ids,
    load_audio,
    load_noise,
    load_speaker_only,
    load_utterances,
)
from transcriber.whisper.arbitrators import (  # noqa: E402
    ArbitratorDimensions,
    Arbitrators,
    OperatingPoint,
    borrowed_from,
)
from transcriber.whisper.audio_features import log_mel_spectrogram  # noqa: E402
from transcriber.whisper.decoding import WhisperRecognizer  # noqa: E402
from transcriber.whisper.model import AudioEncoder, Whisper  # noqa: E402
from transcriber.whisper.recognizer import load_recognizer  # noqa: E402

SAMPLE_RATE = 16_000


@dataclass
class Window:
    mel: torch.Tensor  # (n_mels, frames), frames even
    tokens: list[int]  # the teacher's text tokens
    source: str


def training_audio(rng: random.Random) -> list[tuple[str, np.ndarray]]:
    """(name, audio) of every clip the arbitrators may train on."""
    scored = heldout_utterance_ids()
    clips = [(u.id, load_audio(u.path)) for u in load_utterances() if u.id not in scored]
    clips += [(path.stem, load_audio(path)) for _, path in load_speaker_only()]
    clips += [(noise.name, load_audio(noise.path)) for noise in load_noise()]
    for index in range(20):  # near-silence: a quiet room, at -60 to -80 dBFS
        level = 10 ** (rng.uniform(-80, -60) / 20)
        clips.append((f"silence{index}", (np.random.default_rng(index).normal(0, level, 8 * SAMPLE_RATE))))
    return [(name, audio.astype(np.float32)) for name, audio in clips]


def cut_windows(clips: list[tuple[str, np.ndarray]], count: int, rng: random.Random) -> list[tuple[str, np.ndarray]]:
    windows = []
    for _ in range(count):
        name, audio = rng.choice(clips)
        length = min(len(audio), int(rng.uniform(2.0, 10.0) * SAMPLE_RATE))
        start = rng.randrange(0, len(audio) - length + 1)
        windows.append((name, audio[start : start + length]))
    return windows


def mel_of(audio: np.ndarray, n_mels: int) -> torch.Tensor:
    """The recognizer's encoder input for ``audio``: 1 s of padding, an even frame count."""
    padded = np.concatenate([audio, np.zeros(SAMPLE_RATE, dtype=np.float32)])
    mel = log_mel_spectrogram(padded, n_mels)
    return mel[:, : mel.shape[-1] - mel.shape[-1] % 2]


def teacher_windows(teacher: WhisperRecognizer, windows: list[tuple[str, np.ndarray]]) -> list[Window]:
    out = []
    for name, audio in windows:
        result = teacher.transcribe(audio, with_words=False)
        out.append(Window(mel_of(audio, teacher.model.dims.n_mels), result.tokens, name))
    return out


def gated_forward(
    encoder: AudioEncoder, arbitrators: Arbitrators, mel: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The encoder with straight-through gates: (output, attention gate probs, MLP gate probs)."""
    x = encoder.embed(mel[None])
    attention_probs, mlp_probs = [], []
    for layer, block in enumerate(encoder.blocks):
        h = block.attn_ln(x)
        p = torch.sigmoid(arbitrators.attention[layer](h))
        x = x + _with_borrowing(block.self_attention(h), p)
        h = block.mlp_ln(x)
        q = torch.sigmoid(arbitrators.mlp[layer](h))
        x = x + _with_borrowing(block.mlp(h), q)
        attention_probs.append(p)
        mlp_probs.append(q)
    return encoder.ln_post(x), attention_probs, mlp_probs


def _with_borrowing(out: torch.Tensor, probability: torch.Tensor) -> torch.Tensor:
    """Sub-block output (1, frames, state) as the gated encoder adds it: kept frames their
    own, skipped frames their kept neighbour's. The gate is hard forward and passes the
    sigmoid's gradient back (straight-through): d/dgate = own - borrowed output."""
    keep = probability[0] > 0.5
    borrowed = out[:, keep.nonzero().squeeze(-1)][:, borrowed_from(keep)] if keep.any() else torch.zeros_like(out)
    gate = (keep.float() + probability[0] - probability[0].detach())[None, :, None]
    return gate * out + (1 - gate) * borrowed


def skippable_costs(d: int, frames: int) -> tuple[float, float]:
    """Per-frame FLOPs a gate saves: attention (query, output projection, scores) and MLP."""
    return 2.0 * (2 * d * d + 2 * frames * d), 2.0 * 8 * d * d


def decoder_logits(model: Whisper, features: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
    hidden, _ = model.decoder(sequence, model.decoder.new_cache(features))
    return model.decoder.logits(hidden[0])


def train(args: argparse.Namespace) -> Arbitrators:
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(args.threads)
    teacher = load_recognizer(args.model, int8=False)
    model = teacher.model
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    tok = teacher.tokenizer
    started = time.perf_counter()
    cache = args.cache / f"windows-{args.model}-{args.windows}-seed{args.seed}.pt" if args.cache else None
    if cache is not None and cache.is_file():
        saved = torch.load(cache, weights_only=True)
        windows = [Window(mel, tokens, source) for mel, tokens, source in saved]
    else:
        windows = teacher_windows(teacher, cut_windows(training_audio(rng), args.windows, rng))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save([(w.mel, w.tokens, w.source) for w in windows], cache)
    rng = random.Random(args.seed + 1)  # the same steps whether the windows were cached or not
    print(f"{len(windows)} windows from the teacher in {time.perf_counter() - started:.0f} s", flush=True)

    dims = ArbitratorDimensions(model.dims.n_audio_state, model.dims.n_audio_layer, args.hidden)
    arbitrators = Arbitrators(dims, OperatingPoint(args.name or f"penalty {args.penalty}", args.penalty))
    optimizer = torch.optim.Adam(arbitrators.parameters(), lr=args.lr)
    d = dims.n_state
    log = {"kl": 0.0, "feature": 0.0, "run": 0.0, "n": 0}
    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        for window in rng.sample(windows, args.batch):
            sequence = torch.tensor([[*tok.sot_sequence, tok.no_timestamps, *window.tokens, tok.eot]])
            prefix = len(tok.sot_sequence)
            with torch.no_grad():
                target = model.encoder(window.mel[None])
                teacher_logp = decoder_logits(model, target, sequence)[prefix:-1].log_softmax(-1)
            student, attention_probs, mlp_probs = gated_forward(model.encoder, arbitrators, window.mel)
            student_logp = decoder_logits(model, student, sequence)[prefix:-1].log_softmax(-1)
            kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="batchmean")
            feature = ((student - target) ** 2).mean() / (target**2).mean()
            frames = student.shape[1]
            attention_cost, mlp_cost = skippable_costs(d, frames)
            total = (attention_cost + mlp_cost) * len(attention_probs)
            layers = list(zip(attention_probs, mlp_probs, strict=True))
            expected = sum(attention_cost * p.mean() + mlp_cost * q.mean() for p, q in layers)
            run = sum(
                attention_cost * float((p > 0.5).float().mean()) + mlp_cost * float((q > 0.5).float().mean())
                for p, q in layers
            )
            loss = kl + args.feature_weight * feature + args.penalty * expected / total
            (loss / args.batch).backward()
            log["kl"] += float(kl.detach())
            log["feature"] += float(feature.detach())
            log["run"] += run / total
            log["n"] += 1
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps:
            n = max(1, log["n"])
            elapsed = time.perf_counter() - started
            print(
                f"step {step}: KL {log['kl'] / n:.4f}  feature {log['feature'] / n:.4f}  "
                f"skippable FLOPs run {100 * log['run'] / n:.1f} %  ({elapsed:.0f} s)",
                flush=True,
            )
            log = {"kl": 0.0, "feature": 0.0, "run": 0.0, "n": 0}
    measure(arbitrators, args.model, rng.sample(windows, min(len(windows), 100)))
    arbitrators.point.notes |= {
        "steps": args.steps,
        "windows": len(windows),
        "batch": args.batch,
        "lr": args.lr,
        "feature_weight": args.feature_weight,
        "seed": args.seed,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    return arbitrators.eval()


@torch.inference_mode()
def measure(arbitrators: Arbitrators, model_name: str, windows: list[Window]) -> None:
    """Fill in the operating point as the runtime sees it (the int8 model): the fraction
    of sub-blocks run and of encoder FLOPs over ``windows``, and the fraction run on
    the JFK clip, which tests check the shipped weights against."""
    recognizer = load_recognizer(model_name)
    plain = recognizer.plain_encoder
    recognizer.set_arbitrators(arbitrators)
    gated = recognizer.model.encoder
    full_flops = 0.0
    for window in windows:
        gated(window.mel[None])
        full_flops += plain.flops(window.mel.shape[-1] // 2)
    arbitrators.point.blocks_run = round(gated.gates.fraction_run(), 4)
    arbitrators.point.flops_fraction = round(gated.gates.flops / full_flops, 4)
    jfk = REPO_ROOT.parent / "shared/data/utterances/jfk_whisper/jfk.flac"
    if jfk.is_file():
        gated.gates.clear()
        recognizer.encode(load_audio(jfk))
        arbitrators.point.notes["jfk_blocks_run"] = round(gated.gates.fraction_run(), 4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--penalty", type=float, default=1.0, help="weight of the compute term")
    parser.add_argument("--out", type=Path, required=True, help="weights file (.pt); a .json goes beside it")
    parser.add_argument("--name", default="", help="operating point name (default: from the penalty)")
    parser.add_argument("--windows", type=int, default=400, help="training windows cut from the audio")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=8, help="windows per optimizer step")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--hidden", type=int, default=32, help="arbitrator hidden units")
    parser.add_argument("--feature-weight", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--cache", type=Path, help="keep the teacher's windows here between runs")
    parser.add_argument("--measure-only", action="store_true", help="measure the weights at --out, do not train")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure_only:  # re-measure trained weights (e.g. after a change to the gated encoder)
        arbitrators = Arbitrators.load(args.out)
        rng = random.Random(args.seed)
        windows = teacher_windows(load_recognizer(args.model), cut_windows(training_audio(rng), 100, rng))
        measure(arbitrators, args.model, windows)
        arbitrators.save(args.out)
        print(f"{args.out}: {arbitrators.point}")
        return 0
    arbitrators = train(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    arbitrators.save(args.out)
    print(f"saved {args.out} ({sum(p.numel() for p in arbitrators.parameters())} parameters)")
    return 0 if math.isfinite(arbitrators.point.penalty) else 1


if __name__ == "__main__":
    raise SystemExit(main())
