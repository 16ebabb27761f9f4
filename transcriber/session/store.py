"""Sessions on disk: one folder per recording or opened file.

    <root>/<session id>/
        session.json    title, source, state, times (see SessionInfo)
        audio.pcm       while recording: raw 16 kHz mono int16, flushed every second
        audio.flac      the recording, once it is closed (or recovered after a crash)
        journal.jsonl   the transcript's events and edits (transcript.journal)

The root is the user's data directory (``platformdirs``), e.g.
``~/.local/share/transcriber/sessions`` on Linux; ``TRANSCRIBER_DATA_DIR``
overrides it. A session whose state is still ``recording`` or ``transcribing``
while no live process owns it was interrupted (a crash, a kill, a power cut):
``recover`` turns what reached the disk into a normal session.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from platformdirs import user_data_dir

from transcriber.audio.recorder import pcm_to_flac
from transcriber.transcript.journal import replay
from transcriber.transcript.model import Transcript

RECORDING, TRANSCRIBING, COMPLETE = "recording", "transcribing", "complete"
MICROPHONE = "microphone"


def default_root() -> Path:
    override = os.environ.get("TRANSCRIBER_DATA_DIR")
    base = Path(override) if override else Path(user_data_dir("transcriber", appauthor=False))
    return base / "sessions"


@dataclass
class SessionInfo:
    title: str
    source: str  # MICROPHONE, or the path of the file that was opened
    created: str  # ISO 8601, local time
    state: str = RECORDING
    duration_seconds: float = 0.0
    pid: int = 0  # the process that writes the session while it is not complete
    notes: list[str] = field(default_factory=list)  # e.g. why a recording stopped early


class Session:
    """A session folder; the methods read and write its files."""

    def __init__(self, folder: Path, info: SessionInfo):
        self.folder = folder
        self.info = info

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def pcm_path(self) -> Path:
        return self.folder / "audio.pcm"

    @property
    def flac_path(self) -> Path:
        return self.folder / "audio.flac"

    @property
    def journal_path(self) -> Path:
        return self.folder / "journal.jsonl"

    @property
    def audio_path(self) -> Path | None:
        """The recording as it is now: FLAC once closed, else the raw file being written."""
        for path in (self.flac_path, self.pcm_path):
            if path.is_file():
                return path
        return None

    def save_info(self) -> None:
        partial = self.folder / "session.json.part"
        partial.write_text(json.dumps(asdict(self.info), indent=1), encoding="utf-8")
        partial.replace(self.folder / "session.json")  # atomic: never a half-written file

    def transcript(self) -> Transcript:
        transcript = Transcript(audio_path=str(self.audio_path) if self.audio_path else None)
        if self.journal_path.is_file():
            transcript = replay(self.journal_path, transcript)
        transcript.duration = max(transcript.duration, self.info.duration_seconds)
        return transcript

    def is_interrupted(self) -> bool:
        return self.info.state != COMPLETE and not _alive(self.info.pid)

    def close_recording(self) -> float:
        """Raw audio to FLAC; returns the recording's seconds."""
        if self.pcm_path.is_file():
            self.info.duration_seconds = pcm_to_flac(self.pcm_path, self.flac_path)
            self.pcm_path.unlink()
        return self.info.duration_seconds

    def complete(self) -> None:
        self.info.state = COMPLETE
        self.info.pid = 0
        self.save_info()

    def recover(self) -> None:
        """An interrupted session becomes complete with the audio and transcript that
        reached the disk (at most the last second of each is lost)."""
        self.close_recording()
        self.info.notes.append(f"recovered after an interruption on {datetime.now().isoformat(timespec='seconds')}")
        self.complete()


class SessionStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    def create(self, title: str, source: str = MICROPHONE) -> Session:
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        folder = self.root / stamp
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = self.root / f"{stamp}_{suffix}"
        folder.mkdir()
        info = SessionInfo(title=title, source=source, created=datetime.now().isoformat(timespec="seconds"))
        info.pid = os.getpid()
        info.state = RECORDING if source == MICROPHONE else TRANSCRIBING
        session = Session(folder, info)
        session.save_info()
        return session

    def open(self, session_id: str) -> Session:
        folder = self.root / session_id
        data = json.loads((folder / "session.json").read_text(encoding="utf-8"))
        return Session(folder, SessionInfo(**data))

    def sessions(self) -> list[Session]:
        """All readable sessions, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.iterdir(), reverse=True):
            if (folder / "session.json").is_file():
                try:
                    found.append(self.open(folder.name))
                except (OSError, ValueError, TypeError):
                    continue  # a folder that is not a session of ours
        return found

    def interrupted(self) -> list[Session]:
        return [session for session in self.sessions() if session.is_interrupted()]

    def delete(self, session: Session) -> None:
        shutil.rmtree(session.folder)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
