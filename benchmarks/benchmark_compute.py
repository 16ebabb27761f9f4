"""WER against encoder compute: full encoder, trained arbitrators, sliding-window attention.

    python benchmarks/benchmark_compute.py                    # 60 utterances, 2 meetings (0L)
    python benchmarks/benchmark_compute.py --utterances 20 --meetings 0 --radii 50

Every configuration runs the same engine (file configuration, tiny.en int8, 2
threads) on the same audio; the configurations take turns item by item, so that
a change in machine speed hits all of them alike. Per configuration: the
fraction of encoder sub-blocks run (from the gates' real decisions), encoder
FLOPs and encoder wall time (both summed over every window the engine decoded,
and relative to the full encoder's), utterance WER on the scored utterances
(which no arbitrator trained on), and cpWER on simulated meetings.

Configurations: ``full`` (budget 1), every trained operating point in
models/arbitrators/ (``--points`` to pick), and sliding-window self-attention
with each radius of ``--radii`` (frames of 20 ms on either side).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transcriber.engine.engine import StreamingEngine  # noqa: E402
from transcriber.engine.transducer import TransducerConfig  # noqa: E402
from transcriber.evaluation import metrics  # noqa: E402
from transcriber.evaluation.data import load_audio, load_utterances, scored_utterances  # noqa: E402
from transcriber.evaluation.simulate import WhisperForcedAligner, simulate_meeting  # noqa: E402
from transcriber.transcript.builder import TranscriptBuilder  # noqa: E402
from transcriber.whisper.arbitrators import Arbitrators, operating_points  # noqa: E402
from transcriber.whisper.local_attention import SlidingWindowEncoder  # noqa: E402

SAMPLE_RATE = 16_000


@dataclass
class Configuration:
    name: str
    arbitrators: Arbitrators | EveryOtherFrame | None = None
    radius: int | None = None
    refs: list[str] = field(default_factory=list)
    hyps: list[str] = field(default_factory=list)
    cpwer: metrics.ErrorCounts = metrics.ZERO_ERRORS
    encoder_seconds: float = 0.0
    encoder_flops: float = 0.0
    blocks_run: int = 0
    blocks_offered: int = 0


@dataclass
class Item:
    name: str
    audio: np.ndarray
    text: str = ""
    reference_seglst: list | None = None


class EveryOtherFrame:
    """Fixed gates, not learned: every sub-block runs on even frames, odd frames borrow.
    Shows what the arbitrators' choice of frames is worth."""

    def __init__(self, n_layer: int):
        self.attention = self.mlp = [self._logits] * n_layer

    @staticmethod
    def _logits(h: torch.Tensor) -> torch.Tensor:
        frames = torch.arange(h.shape[-2])
        return torch.where(frames % 2 == 0, 1.0, -1.0).expand(h.shape[:-1])

    def flops_per_frame(self) -> float:
        return 0.0


def configurations(args: argparse.Namespace, n_layer: int) -> list[Configuration]:
    out = [Configuration("full encoder")]
    for path in operating_points(args.model):
        arbitrators = Arbitrators.load(path)
        if not args.points or arbitrators.point.name in args.points:
            out.append(Configuration(f"arbitrators {arbitrators.point.name}", arbitrators=arbitrators))
    if args.every_other:
        out.append(Configuration("every other frame (fixed gates)", arbitrators=EveryOtherFrame(n_layer)))
    out += [Configuration(f"sliding window ±{r * 0.02:.2f} s", radius=r) for r in args.radii]
    return out


def items(args: argparse.Namespace) -> list[Item]:
    chosen = [
        Item(u.id, load_audio(u.path), text=u.text) for u in scored_utterances(load_utterances(), args.utterances)
    ]
    aligner = WhisperForcedAligner() if args.meetings else None
    for index in range(args.meetings):
        meeting = simulate_meeting(load_utterances(), 3 + index % 2, "0L", seed=1000 + index, aligner=aligner)
        chosen.append(Item(meeting.session_id, meeting.audio, reference_seglst=meeting.to_seglst()))
    return chosen


def run_item(engine: StreamingEngine, configuration: Configuration, item: Item) -> None:
    recognizer = engine.recognizer
    plain = recognizer.plain_encoder
    if configuration.radius is not None:
        recognizer.model.encoder = SlidingWindowEncoder(plain, configuration.radius)
    else:
        recognizer.set_arbitrators(configuration.arbitrators)
    fresh = engine.fresh(transducer=TransducerConfig.for_files())
    builder = TranscriptBuilder()
    for start in range(0, len(item.audio), SAMPLE_RATE):
        builder.apply_all(fresh.feed(item.audio[start : start + SAMPLE_RATE]))
    builder.apply_all(fresh.finish())
    transcript = builder.transcript
    cost = transcript.cost_summary  # every CostSample of the stream, added up
    configuration.encoder_seconds += cost["stage_seconds"].get("encoder", 0.0)
    configuration.encoder_flops += cost["stage_flops"].get("encoder", 0.0)
    configuration.blocks_run += cost["encoder_sub_blocks_run"]
    configuration.blocks_offered += cost["encoder_sub_blocks_offered"]
    if item.reference_seglst is not None:
        hypothesis = metrics.transcript_to_seglst(transcript, item.name)
        configuration.cpwer = configuration.cpwer + metrics.cpwer(item.reference_seglst, hypothesis)
    else:
        configuration.refs.append(item.text)
        configuration.hyps.append(" ".join(turn.text for turn in transcript.sorted_turns()))
    recognizer.model.encoder = plain
    recognizer.set_arbitrators(None)


def table(configurations: list[Configuration]) -> str:
    full = configurations[0]
    full_wer = metrics.wer(full.refs, full.hyps).rate if full.refs else None
    lines = [
        "| configuration | sub-blocks run | encoder FLOPs | vs full | encoder wall time | vs full "
        "| utterance WER | rel. WER change | meetings cpWER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in configurations:
        wer = metrics.wer(c.refs, c.hyps).rate if c.refs else None
        change = f"{100 * (wer / full_wer - 1):+.1f} %" if wer is not None and full_wer else "n/a"
        blocks_run = c.blocks_run / max(1, c.blocks_offered)
        lines.append(
            f"| {c.name} | {100 * blocks_run:.1f} % | {c.encoder_flops / 1e9:.1f} G "
            f"| {100 * (c.encoder_flops / full.encoder_flops - 1):+.1f} % | {c.encoder_seconds:.1f} s "
            f"| {100 * (c.encoder_seconds / full.encoder_seconds - 1):+.1f} % "
            f"| {'n/a' if wer is None else f'{100 * wer:.1f} %'} | {change} "
            f"| {f'{100 * c.cpwer.rate:.1f} %' if c.cpwer.words else 'n/a'} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--utterances", type=int, default=60)
    parser.add_argument("--meetings", type=int, default=2, help="simulated 0L meetings (0: none)")
    parser.add_argument("--points", default="", help="comma-separated operating point names (default: all)")
    parser.add_argument("--radii", default="50", help="sliding-window radii in frames, comma-separated ('' none)")
    parser.add_argument("--every-other", action="store_true", help="also fixed gates: every other frame runs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    args.points = [p for p in args.points.split(",") if p]
    args.radii = [int(r) for r in args.radii.split(",") if r]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    engine = StreamingEngine.create(model=args.model)
    chosen = configurations(args, engine.recognizer.model.dims.n_audio_layer)
    data = items(args)
    started = time.perf_counter()
    for item in data:
        for configuration in chosen:
            run_item(engine, configuration, item)
    seconds = sum(len(i.audio) for i in data) / SAMPLE_RATE
    utterances = sum(1 for i in data if i.reference_seglst is None)
    meetings = len(data) - utterances
    print(
        f"Data: {utterances} scored utterances, {meetings} simulated 0L meetings, {seconds:.0f} s of audio; "
        f"{args.model} int8, {args.threads} threads; {time.perf_counter() - started:.0f} s in all.\n"
    )
    print(table(chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
