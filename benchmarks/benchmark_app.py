"""The desktop app's numbers: launch time, UI stalls, lost samples, crash recovery.

    python benchmarks/benchmark_app.py                       # all four, 10-minute recording
    python benchmarks/benchmark_app.py --only launch,stalls  # some of them
    python benchmarks/benchmark_app.py --minutes 2           # a shorter lost-samples run

* launch: from starting the process to the window shown with Record enabled,
  and to the model loaded (it loads in the background; recording may start
  before, its audio waits for the engine).
* stalls: the main window (offscreen) records a simulated meeting from a test
  source in real time and transcribes it live; a 10 ms timer on the UI thread
  measures how late the event loop runs (p50, p99, max).
* lost: a meeting is played into a PulseAudio virtual microphone for
  ``--minutes`` while a child process records it with the engine slowed to half
  of real time (it sleeps so that each second of audio costs two); the recorded
  audio is compared with what was played: samples missing, correlation of every
  10 s chunk at one alignment (a gap would shift what follows), overflows.
* crash: a child records from a test source and is killed (SIGKILL) at a
  random moment, ``--crashes`` times; the session is recovered and compared
  with what the child had reported recorded just before.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the stall run's window; set DISPLAY and xcb to watch it
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


# --- launch ---------------------------------------------------------------------------------------

_LAUNCH = textwrap.dedent(
    """
    import sys, time
    started = float(sys.argv[1])
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication
    from transcriber.gui.app import build_window
    from transcriber.session.store import SessionStore

    app = QApplication(sys.argv[:1])
    window = build_window(SessionStore(sys.argv[2]), QSettings(sys.argv[3], QSettings.Format.IniFormat))
    window.show()
    times = {}

    def check():
        if "ready" not in times and window.isVisible() and window.record_action.isEnabled():
            times["ready"] = time.time() - started
        if "model" not in times and window.workspace.loader.ready:
            times["model"] = time.time() - started
        if len(times) == 2:
            print(times["ready"], times["model"], flush=True)
            app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(5)
    app.exec()
    """
)


def launch(runs: int) -> dict[str, str]:
    ready, model = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.time()
            output = subprocess.run(
                [sys.executable, "-c", _LAUNCH, str(started), f"{scratch}/sessions", f"{scratch}/settings.ini"],
                env=ENV,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout.split()
            ready.append(float(output[0]))
            model.append(float(output[1]))
    each = ", ".join(f"{r:.2f}" for r in ready)
    return {
        "launch to ready-to-record (median of runs)": f"{np.median(ready):.2f} s (runs: {each})",
        "launch to model loaded (median)": f"{np.median(model):.2f} s",
    }


# --- stalls ---------------------------------------------------------------------------------------


def stalls(seconds: float) -> dict[str, str]:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from transcriber.audio.replay import ReplaySource
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.simulate import simulate_meeting
    from transcriber.gui.app import build_window
    from transcriber.session.store import SessionStore

    audio = np.zeros(0, dtype=np.float32)
    seed = 0
    utterances = load_utterances()
    while len(audio) < seconds * SAMPLE_RATE:
        audio = np.concatenate([audio, simulate_meeting(utterances, 3, "0S", seed=seed).audio])
        seed += 1
    audio = audio[: int(seconds * SAMPLE_RATE)]

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as scratch:
        qsettings = QSettings(f"{scratch}/settings.ini", QSettings.Format.IniFormat)
        window = build_window(SessionStore(f"{scratch}/sessions"), qsettings)
        window.show()
        window.workspace.loader.get()
        late: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            late.append(max(0.0, now - last[0] - 0.010))
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(10)
        source = ReplaySource(audio, speed=1.0)
        window.start_recording(source=source)
        while not source.exhausted.is_set():
            app.processEvents()
            time.sleep(0.001)
        recorded_until = time.perf_counter()
        window.stop()
        while window.workspace.busy:
            app.processEvents()
            time.sleep(0.001)
        timer.stop()
        turns = len(window.workspace.transcript.turns)
        window.close()
    stall_ms = 1000 * np.array(late)
    return {
        "UI event-loop lateness while recording live (10 ms timer)": (
            f"p50 {np.percentile(stall_ms, 50):.1f} ms, p99 {np.percentile(stall_ms, 99):.1f} ms,"
            f" max {stall_ms.max():.0f} ms over {len(stall_ms)} ticks"
        ),
        "stalls > 100 ms": f"{int((stall_ms > 100).sum())}",
        "live recording": f"{seconds:.0f} s of a simulated 0S meeting, {turns} turns, catch-up after stop"
        f" {time.perf_counter() - recorded_until:.1f} s",
    }


# --- lost samples ---------------------------------------------------------------------------------

_SLOW_RECORDER = textwrap.dedent(
    """
    import json, sys, time
    from transcriber.session.runner import LiveRecording
    from transcriber.session.store import SessionStore
    from transcriber.audio.capture import MicrophoneCapture
    from transcriber.engine.engine import StreamingEngine

    class HalfSpeed:
        def __init__(self, engine):
            self.engine = engine
        @property
        def time(self):
            return self.engine.time
        def feed(self, samples):
            started = time.perf_counter()
            events = self.engine.feed(samples)
            time.sleep(max(0.0, 2.0 * len(samples) / 16000 - (time.perf_counter() - started)))
            return events
        def finish(self):
            return self.engine.finish()

    engine = HalfSpeed(StreamingEngine.create())
    session = SessionStore(sys.argv[1]).create("half speed")
    capture = MicrophoneCapture("default")
    recording = LiveRecording(session, engine, capture)
    recording.start()
    while capture.callbacks == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    print("READY", flush=True)
    sys.stdin.readline()
    backlog = recording.progress().backlog_seconds
    recording.stop()
    recording.wait_audio()  # the audio file is complete; recognition may go on
    problems = []
    while not recording.outbox.empty():
        item = recording.outbox.get()
        if hasattr(item, "message"):
            problems.append(item.message)
    print(json.dumps({"pcm": str(session.pcm_path), "overflows": capture.overflows,
                      "backlog": backlog, "problems": problems}), flush=True)
    sys.stdin.readline()
    """
)


def lost_samples(minutes: float) -> dict[str, str]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from long_file import build_long_meeting

    from transcriber.audio.recorder import read_pcm
    from transcriber.evaluation import virtual_mic

    if not virtual_mic.available():
        return {"lost samples": "n/a (needs pulseaudio, pactl, paplay)"}
    with tempfile.TemporaryDirectory() as scratch:
        played_flac = Path(scratch) / "meeting.flac"
        build_long_meeting(played_flac, minutes)
        played, _ = sf.read(played_flac, dtype="float32")
        played_wav = Path(scratch) / "meeting.wav"
        sf.write(played_wav, played, SAMPLE_RATE, subtype="PCM_16")
        with virtual_mic.virtual_microphone() as microphone:
            child = subprocess.Popen(
                [sys.executable, "-c", _SLOW_RECORDER, f"{scratch}/sessions"],
                env={**microphone.env, "PYTHONPATH": str(REPO)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdin is not None and child.stdout is not None
            if child.stdout.readline().strip() != "READY":
                raise SystemExit("the recorder did not start")
            microphone.play(played_wav)
            time.sleep(1.0)
            child.stdin.write("stop\n")
            child.stdin.flush()
            result = json.loads(child.stdout.readline())
            recorded = read_pcm(result["pcm"])
            child.kill()
            child.wait()
        reference, _ = sf.read(played_wav, dtype="float32")
    head = min(len(reference), 30 * SAMPLE_RATE)
    _, offset = virtual_mic.aligned_correlation(reference[:head], recorded[: head + 10 * SAMPLE_RATE])
    missing = max(0, offset + len(reference) - len(recorded))
    # every 10 s chunk, aligned on its own within +-0.1 s: a dropped block would move
    # all later chunks by its length; resampling (16 -> 44.1 -> 16 kHz in PulseAudio)
    # lowers the correlation a little but moves nothing
    chunk, search = 10 * SAMPLE_RATE, SAMPLE_RATE // 10
    shifts, correlations = [], []
    for start in range(0, len(reference) - chunk + 1, chunk):
        played_chunk = reference[start : start + chunk]
        if np.std(played_chunk) < 1e-4:
            continue
        around = recorded[max(0, offset + start - search) : offset + start + chunk + search]
        correlation, local = virtual_mic.aligned_correlation(played_chunk, around)
        shifts.append(local - min(search, offset + start))
        correlations.append(correlation)
    return {
        "virtual-microphone recording, engine at half real time": f"{len(reference) / SAMPLE_RATE / 60:.1f} min played",
        "samples lost": f"{missing} (recorded {len(recorded)}, played {len(reference)} from offset {offset})",
        "10 s chunks where they belong (shift 0 samples)": f"{sum(shift == 0 for shift in shifts)} of {len(shifts)}"
        f" (shifts {min(shifts)}..{max(shifts)} samples; correlation min {min(correlations):.3f},"
        f" median {np.median(correlations):.3f})",
        "input overflows / problems": f"{result['overflows']} / {result['problems'] or 'none'}",
        "backlog at stop": f"{result['backlog']:.0f} s (recognition behind, recording not)",
    }


# --- crash recovery -------------------------------------------------------------------------------

_CRASH = textwrap.dedent(
    """
    import sys, time
    import soundfile as sf
    from transcriber.audio.replay import ReplaySource
    from transcriber.engine.engine import StreamingEngine
    from transcriber.session.runner import LiveRecording
    from transcriber.session.store import SessionStore

    audio, _ = sf.read(sys.argv[2], dtype="float32")
    session = SessionStore(sys.argv[1]).create("crash")
    recording = LiveRecording(session, StreamingEngine.create(threads=1), ReplaySource(audio))
    recording.start()
    while True:
        print(f"{recording.progress().recorded_seconds:.3f}", flush=True)
        time.sleep(0.02)
    """
)


def crashes(runs: int) -> dict[str, str]:
    from transcriber.session.store import SessionStore

    demo = REPO / "assets" / "demo_meeting.ogg"
    losses = []
    rng = random.Random(0)
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            child = subprocess.Popen(
                [sys.executable, "-c", _CRASH, f"{scratch}/sessions", str(demo)],
                env=ENV,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            kill_at = rng.uniform(3.0, 20.0)
            reported = 0.0
            while reported < kill_at:
                reported = float(child.stdout.readline() or 0.0)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            [session] = SessionStore(f"{scratch}/sessions").interrupted()
            session.recover()
            recovered = sf.info(session.flac_path).frames / SAMPLE_RATE
            losses.append(max(0.0, reported - recovered))
    return {
        "audio lost to kill -9 (reported recorded - recovered)": f"max {max(losses):.3f} s, mean"
        f" {np.mean(losses):.3f} s over {runs} kills"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="launch,stalls,lost,crash")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the lost-samples recording")
    parser.add_argument("--stall-seconds", type=float, default=120.0)
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--crashes", type=int, default=5)
    args = parser.parse_args()
    chosen = args.only.split(",")
    rows: dict[str, str] = {}
    if "launch" in chosen:
        rows |= launch(args.launches)
    if "crash" in chosen:
        rows |= crashes(args.crashes)
    if "stalls" in chosen:
        rows |= stalls(args.stall_seconds)
    if "lost" in chosen:
        rows |= lost_samples(args.minutes)
    print("| measure | result |\n|---|---|")
    for name, value in rows.items():
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
