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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
for path in (REPO_ROOT, REPO_ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchmark_engine import Tally, build_meetings, score_item, summarize, transcribe_item  # noqa: E402

from transcriber.engine.engine import StreamingEngine  # noqa: E402
from transcriber.engine.transducer import TransducerConfig  # noqa: E402
from transcriber.evaluation import metrics  # noqa: E402


@dataclass
class Configuration:
    name: str
    engine_changes: dict[str, Any]
    transducer_changes: dict[str, Any]
    tally: Tally = field(default_factory=Tally)  # the benchmark's scores over all meetings

    def engine(self, prototype: StreamingEngine) -> StreamingEngine:
        transducer = replace(TransducerConfig.for_files(), **self.transducer_changes)
        return prototype.fresh(transducer=transducer, **self.engine_changes)

    def line(self) -> str:
        r = summarize(self.tally)
        return (
            f"| {self.name} | {100 * r['cpwer']:.2f} % ({self.tally.cpwer.errors}) | {100 * r['orc_wer']:.2f} % "
            f"| {100 * r['der']:.2f} % | {sum(self.tally.speaker_counts)} of {self.tally.items} | {r['rtf']:.3f} |"
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
        errors: list[dict[str, int]] = []  # per meeting: cpWER errors under A and B
        print("| meeting | A errors | B errors | words |")
        print("|---|---|---|---|")
        for number, item in enumerate(items):
            order = configurations if number % 2 == 0 else configurations[::-1]
            counted, words = {}, 0
            for configuration in order:
                before = configuration.tally.cpwer
                score_item(item, transcribe_item(configuration.engine(prototype), item), configuration.tally)
                counted[configuration.name] = configuration.tally.cpwer.errors - before.errors
                words = configuration.tally.cpwer.words - before.words
            errors.append(counted)
            print(f"| {item.id} | {counted['A']} | {counted['B']} | {words} |", flush=True)
    print()
    print(f"A: {args.a} {args.a_transducer}")
    print(f"B: {args.b} {args.b_transducer}")
    print()
    print("| configuration | cpWER (errors) | ORC-WER | DER | speakers counted right | RTF |")
    print("|---|---|---|---|---|---|")
    for configuration in configurations:
        print(configuration.line())
    better = sum(e["B"] < e["A"] for e in errors)
    worse = sum(e["B"] > e["A"] for e in errors)
    print()
    print(
        f"B against A, meeting by meeting: {better} better, {worse} worse, {len(errors) - better - worse} the same; "
        f"sign test p = {metrics.sign_test(better, worse):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
