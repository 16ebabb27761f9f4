"""Two engine configurations on the same simulated meetings, meeting by meeting.

A change that moves cpWER by a few errors over 24 meetings may be noise: some
meetings gain, as many lose. This script runs configuration A and configuration
B on each meeting in turn (A first on even meetings, B first on odd ones, so that
the machine's drifting speed falls on both alike), prints each meeting's cpWER
errors under both, the totals (cpWER, ORC-WER, DER, speakers counted right, RTF),
and a sign test over the meetings that changed:

    python benchmarks/compare_configs.py --meetings 24 --first-seed 1024 --conditions 0S,0L \\
        --b '{"change_hop": 1.5}'
    python benchmarks/compare_configs.py --b-transducer '{"step_seconds": 3.0}'

``--a`` / ``--b`` are EngineConfig fields as JSON (StreamingEngine.fresh), and
``--a-transducer`` / ``--b-transducer`` fields of the file configuration
(TransducerConfig.for_files) to change. Both run on one loaded model, the file
configuration, 2 threads; meetings shorter than two minutes run as one stream.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchmark_engine import Item, build_meetings  # noqa: E402

from transcriber.api import transcribe_file  # noqa: E402
from transcriber.engine.engine import StreamingEngine  # noqa: E402
from transcriber.engine.transducer import TransducerConfig  # noqa: E402
from transcriber.evaluation import metrics  # noqa: E402
from transcriber.evaluation.data import SpeakerSegment  # noqa: E402


@dataclass
class Configuration:
    name: str
    engine_changes: dict[str, Any]
    transducer_changes: dict[str, Any]

    def engine(self, prototype: StreamingEngine) -> StreamingEngine:
        transducer = replace(TransducerConfig.for_files(), **self.transducer_changes)
        return prototype.fresh(transducer=transducer, **self.engine_changes)


@dataclass
class MeetingScore:
    cpwer: metrics.ErrorCounts
    orc: metrics.ErrorCounts
    der: metrics.DerResult
    speakers_right: bool
    seconds: float


@dataclass
class Totals:
    scores: list[MeetingScore] = field(default_factory=list)

    def line(self, name: str, audio_seconds: float) -> str:
        cp = sum((s.cpwer for s in self.scores), metrics.ZERO_ERRORS)
        orc = sum((s.orc for s in self.scores), metrics.ZERO_ERRORS)
        der = sum((s.der for s in self.scores), metrics.ZERO_DER)
        right = sum(s.speakers_right for s in self.scores)
        rtf = sum(s.seconds for s in self.scores) / audio_seconds
        return (
            f"| {name} | {100 * cp.rate:.2f} % ({cp.errors}) | {100 * orc.rate:.2f} % | {100 * der.rate:.2f} % "
            f"| {right} of {len(self.scores)} | {rtf:.3f} |"
        )


def score(item: Item, configuration: Configuration, prototype: StreamingEngine) -> MeetingScore:
    engine = configuration.engine(prototype)
    started = time.perf_counter()
    transcript = transcribe_file(item.path, engine=engine)
    seconds = time.perf_counter() - started
    hypothesis = metrics.transcript_to_seglst(transcript, item.id) or metrics.text_to_seglst("", item.id)
    reference = [SpeakerSegment(s, float(a), float(b)) for s, a, b in item.reference_rttm]
    uem = [(float(a), float(b)) for a, b in item.uem] if item.uem else None
    found = len({turn.speaker for turn in transcript.turns if turn.text.strip()})
    return MeetingScore(
        metrics.cpwer(item.reference_seglst, hypothesis),
        metrics.orc_wer(item.reference_seglst, hypothesis),
        metrics.der(reference, metrics.transcript_to_segments(transcript), uem=uem, collar=0.25),
        metrics.speaker_count_correct(reference, found),
        seconds,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meetings", type=int, default=12, help="simulated meetings per condition")
    parser.add_argument("--first-seed", type=int, default=1024, help="seed of the first meeting (1000-1011: tuned on)")
    parser.add_argument("--conditions", default="0S,0L", help="e.g. 0S,0L")
    for side in ("a", "b"):
        parser.add_argument(f"--{side}", default="{}", help=f"EngineConfig changes of {side.upper()}, JSON")
        parser.add_argument(f"--{side}-transducer", default="{}", help="TransducerConfig changes, JSON")
    parser.add_argument("--workdir", type=Path, help="keep the simulated meetings here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configurations = [
        Configuration("A", json.loads(args.a), json.loads(args.a_transducer)),
        Configuration("B", json.loads(args.b), json.loads(args.b_transducer)),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
        items = build_meetings(
            args.meetings, conditions, workdir, cut=True, with_speech=False, first_seed=args.first_seed
        )
        prototype = StreamingEngine.create()
        totals = {c.name: Totals() for c in configurations}
        print("| meeting | A errors | B errors | words |")
        print("|---|---|---|---|")
        for number, item in enumerate(items):
            order = configurations if number % 2 == 0 else configurations[::-1]
            scores = {c.name: score(item, c, prototype) for c in order}
            for name, meeting_score in scores.items():
                totals[name].scores.append(meeting_score)
            a, b = scores["A"].cpwer, scores["B"].cpwer
            print(f"| {item.id} | {a.errors} | {b.errors} | {a.words} |", flush=True)
    audio_seconds = sum(item.duration_s for item in items)
    print()
    print(f"A: {args.a} {args.a_transducer}")
    print(f"B: {args.b} {args.b_transducer}")
    print()
    print("| configuration | cpWER (errors) | ORC-WER | DER | speakers counted right | RTF |")
    print("|---|---|---|---|---|---|")
    for configuration in configurations:
        print(totals[configuration.name].line(configuration.name, audio_seconds))
    pairs = [(a.cpwer.errors, b.cpwer.errors) for a, b in zip(totals["A"].scores, totals["B"].scores, strict=True)]
    better = sum(b < a for a, b in pairs)
    worse = sum(b > a for a, b in pairs)
    print()
    print(
        f"B against A, meeting by meeting: {better} better, {worse} worse, {len(pairs) - better - worse} the same; "
        f"sign test p = {metrics.sign_test(better, worse):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
