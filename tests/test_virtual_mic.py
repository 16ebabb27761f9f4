"""End to end through a real (virtual) microphone: a meeting simulated from
../shared/data is played into a PulseAudio null sink; the app's recording
pipeline captures it with sounddevice, writes it to disk and transcribes it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import REPO, SHARED_DATA, needs_shared_data
from transcriber.evaluation import virtual_mic

# Records from the default input in a process of its own (PortAudio must see the
# sink, which exists only once the test has made it). Prints READY once audio flows,
# records until a line arrives on stdin, then waits for the transcript to catch up.
_RECORDER = textwrap.dedent(
    """
    import json, sys, time
    from transcriber.session.store import SessionStore
    from transcriber.session.workspace import EngineLoader, EngineSettings, Workspace

    workspace = Workspace(SessionStore(sys.argv[1]), EngineLoader(EngineSettings()))
    workspace.loader.get()
    session = workspace.start_recording(device="default")
    capture = workspace.job.source
    while capture.callbacks == 0:  # the sink takes a moment to wake up
        time.sleep(0.05)
    time.sleep(0.5)
    print("READY", flush=True)
    sys.stdin.readline()
    overflows = capture.overflows
    workspace.stop()
    while workspace.busy:
        workspace.poll()
        time.sleep(0.05)
    problems = [item.message for item in workspace.poll() if hasattr(item, "message")]
    print(json.dumps({"session": session.id, "overflows": overflows, "problems": problems}), flush=True)
    """
)


def _start_recorder(script: str, microphone: virtual_mic.VirtualMicrophone, sessions: Path) -> subprocess.Popen:
    """A recording process on the virtual microphone; returns once it records."""
    recorder = subprocess.Popen(
        [sys.executable, "-c", script, str(sessions)],
        cwd=REPO,
        env={**microphone.env, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert recorder.stdout is not None
    assert recorder.stdout.readline().strip() == "READY"
    return recorder


@needs_shared_data
@pytest.mark.skipif(not virtual_mic.available(), reason="needs pulseaudio, pactl and paplay (scripts/apt-packages.txt)")
def test_meeting_played_into_a_virtual_microphone(tmp_path: Path) -> None:
    from transcriber.evaluation.data import load_utterances
    from transcriber.evaluation.metrics import cpwer, transcript_to_seglst
    from transcriber.evaluation.simulate import simulate_meeting
    from transcriber.session.store import SessionStore

    meeting = simulate_meeting(load_utterances(), n_speakers=3, condition="0L", seed=2)
    played = tmp_path / "meeting.wav"
    sf.write(played, meeting.audio, 16000, subtype="PCM_16")

    with virtual_mic.virtual_microphone() as microphone:
        recorder = _start_recorder(_RECORDER, microphone, tmp_path / "sessions")
        assert recorder.stdin is not None and recorder.stdout is not None
        microphone.play(played)
        time.sleep(1.0)
        recorder.stdin.write("stop\n")
        recorder.stdin.flush()
        result = json.loads(recorder.stdout.readline())
        assert recorder.wait(timeout=600) == 0

    assert result["problems"] == [] and result["overflows"] == 0
    session = SessionStore(tmp_path / "sessions").open(result["session"])
    recorded, rate = sf.read(session.flac_path, dtype="float32")
    assert rate == 16000
    reference, _ = sf.read(played, dtype="float32")
    correlation, offset = virtual_mic.aligned_correlation(reference, recorded)
    assert correlation > 0.95, f"correlation {correlation:.3f} at offset {offset}"
    assert len(recorded) >= offset + len(reference)  # nothing missing at the end either

    transcript = session.transcript()
    assert len(transcript.speakers) == 3
    # times in the recording are shifted by where playback started
    hypothesis = transcript_to_seglst(transcript, meeting.session_id)
    for segment in hypothesis:
        segment["start_time"] = max(0.0, segment["start_time"] - offset / 16000)
        segment["end_time"] = max(segment["start_time"], segment["end_time"] - offset / 16000)
    errors = cpwer(meeting.to_seglst(), hypothesis)
    assert errors.rate < 0.25, errors


_UNTIL_IT_STOPS = textwrap.dedent(
    """
    import json, sys, time
    from transcriber.session.store import SessionStore
    from transcriber.session.workspace import EngineLoader, EngineSettings, Workspace

    workspace = Workspace(SessionStore(sys.argv[1]), EngineLoader(EngineSettings()))
    workspace.loader.get()
    session = workspace.start_recording(device="default")
    while workspace.job.source.callbacks == 0:
        time.sleep(0.05)
    print("READY", flush=True)
    items = []
    deadline = time.monotonic() + 60
    while workspace.busy and time.monotonic() < deadline:
        items += workspace.poll()
        time.sleep(0.05)
    items += workspace.poll()
    problems = [item.message for item in items if hasattr(item, "message")]
    print(json.dumps({"session": session.id, "stopped": not workspace.busy, "problems": problems}), flush=True)
    """
)


@needs_shared_data
@pytest.mark.skipif(not virtual_mic.available(), reason="needs pulseaudio, pactl and paplay (scripts/apt-packages.txt)")
def test_a_microphone_that_disappears_stops_the_recording_cleanly(tmp_path: Path) -> None:
    from transcriber.session.store import SessionStore

    audio, _ = sf.read(SHARED_DATA / "utterances/jfk_whisper/jfk.flac", dtype="float32")
    played = tmp_path / "jfk.wav"
    sf.write(played, audio, 16000, subtype="PCM_16")
    with virtual_mic.virtual_microphone() as microphone:
        recorder = _start_recorder(_UNTIL_IT_STOPS, microphone, tmp_path / "sessions")
        assert recorder.stdout is not None
        microphone.play(played)
        microphone.unplug()
        result = json.loads(recorder.stdout.readline())
        assert recorder.wait(timeout=120) == 0

    assert result["stopped"], "the recording should stop by itself"
    assert any("microphone" in p or "device" in p for p in result["problems"]), result["problems"]
    session = SessionStore(tmp_path / "sessions").open(result["session"])
    assert session.info.state == "complete"
    recorded, _ = sf.read(session.flac_path, dtype="float32")
    correlation, _ = virtual_mic.aligned_correlation(audio, recorded)
    assert correlation > 0.95  # what was played before the device went is kept
