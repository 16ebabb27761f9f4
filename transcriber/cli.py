"""Command line: ``transcriber`` (the desktop app), ``transcriber transcribe FILE...``,
``transcriber devices``, ``transcriber demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transcriber.whisper.loading import DEFAULT_MODEL

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_MEETING = ASSETS / "demo_meeting.ogg"
ALL_FORMATS = ("txt", "srt", "vtt", "json", "rttm", "seglst", "stm")


def _formats(value: str) -> list[str]:
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown format {','.join(unknown)}; choose from {','.join(ALL_FORMATS)}")
    return formats


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _budget(value: str) -> float:
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]: the fraction of the full encoder's compute")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcriber", description="Offline meeting transcriber. Without a command: the desktop app."
    )
    commands = parser.add_subparsers(dest="command")

    transcribe = commands.add_parser("transcribe", help="transcribe audio or video files")
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument("-o", "--output-dir", type=Path, default=Path("."), help="where to write (default: .)")
    transcribe.add_argument(
        "--format", type=_formats, default=["txt"], help=f"comma-separated, of {','.join(ALL_FORMATS)} (default txt)"
    )
    transcribe.add_argument("--model", default=DEFAULT_MODEL, help="tiny.en, base, a CTranslate2 folder or a .pt file")
    transcribe.add_argument("--speakers", type=_positive_int, default=None, help="known number of speakers")
    transcribe.add_argument(
        "--compute-budget",
        type=_budget,
        default=None,
        metavar="F",
        help="target fraction of encoder compute, in (0, 1]; 1 runs the full encoder "
        "(default: the model's shipped operating point, see models/arbitrators.md)",
    )
    transcribe.add_argument(
        "--separator",
        choices=("on", "off"),
        default="off",
        help="two channels where voices overlap, each with its own turns (experimental; default off)",
    )
    transcribe.add_argument("--quiet", action="store_true", help="no progress bars")

    commands.add_parser("devices", help="list audio input devices")

    demo = commands.add_parser("demo", help="transcribe the bundled demo meeting and print it")
    demo.add_argument("--model", default=DEFAULT_MODEL)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "transcribe":
        engine = _load_engine(args.model, args.speakers, args.compute_budget, args.separator == "on")
        if engine is None:
            return 2
        return _transcribe(engine, args.files, args.output_dir, args.format, args.quiet)
    if args.command == "devices":
        return _devices()
    if args.command == "demo":
        return _demo(args.model)
    from transcriber.gui.app import main as app_main

    return app_main()


def _load_engine(model: str, speakers: int | None, compute_budget: float | None = None, separate: bool = False):
    from transcriber.api import SeparatorConfig, file_engine
    from transcriber.whisper.arbitrators import NoOperatingPoint
    from transcriber.whisper.loading import ModelNotFoundError

    try:
        return file_engine(model, speakers, compute_budget, SeparatorConfig() if separate else None)
    except (ModelNotFoundError, NoOperatingPoint) as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _transcribe(engine, files: list[Path], output_dir: Path, formats: list[str], quiet: bool) -> int:
    from tqdm import tqdm

    from transcriber.api import AudioDecodeError, transcribe_file
    from transcriber.transcript.exporters import FORMATS

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot create {output_dir}: {error.strerror}", file=sys.stderr)
        return 2
    failures = 0
    for path in files:
        bar = tqdm(total=None, desc=path.name, unit="s audio", disable=quiet, leave=True, file=sys.stderr)

        def progress(done: float, total: float | None, bar=bar) -> None:
            if total and bar.total is None:
                bar.total = round(total, 1)
            bar.n = round(done, 1)
            bar.refresh()

        try:
            transcript = transcribe_file(path, engine=engine.fresh(), progress=progress)
        except AudioDecodeError as error:
            bar.close()
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        bar.close()
        for fmt in formats:
            extension, render = FORMATS[fmt]
            target = output_dir / f"{path.stem}{extension}"
            try:
                target.write_text(render(transcript), encoding="utf-8")
            except OSError as error:
                print(f"error: {target}: {error.strerror}", file=sys.stderr)
                failures += 1
    return 1 if failures else 0


def _devices() -> int:
    try:
        import sounddevice
    except OSError as error:  # PortAudio missing
        print(f"error: audio input unavailable: {error}", file=sys.stderr)
        return 2
    devices = sounddevice.query_devices()
    default_input = sounddevice.default.device[0]
    found = False
    for index, device in enumerate(devices):
        if device["max_input_channels"] > 0:
            found = True
            mark = "*" if index == default_input else " "
            rate = int(device["default_samplerate"])
            print(f"{mark} {index:3d}  {device['name']}  ({device['max_input_channels']} ch, {rate} Hz)")
    if not found:
        print("no audio input devices found")
    return 0


def _demo(model: str) -> int:
    from transcriber.api import transcribe_file
    from transcriber.transcript.exporters import FORMATS

    if not DEMO_MEETING.is_file():
        print(f"error: demo meeting not found at {DEMO_MEETING}", file=sys.stderr)
        return 2
    print(f"Transcribing {DEMO_MEETING.name} with {model} ...", file=sys.stderr)
    transcript = transcribe_file(DEMO_MEETING, model=model)
    print(FORMATS["txt"][1](transcript))
    return 0


if __name__ == "__main__":
    sys.exit(main())
