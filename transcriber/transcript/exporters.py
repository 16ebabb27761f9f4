"""Writers for a transcript: text, subtitles, JSON and the scoring formats.

Every format shows a speaker by its display name (``Transcript.display_name``),
so a rename in the GUI reaches every export. Machine formats (RTTM, SegLST,
STM) use the 1-based channel those formats expect and times with 3 decimals.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from transcriber.transcript.model import Transcript, Turn

JSON_FORMAT = "transcriber-transcript"
JSON_VERSION = 1

# Subtitle norms: two lines of 42 characters, on screen for at most ~7 s.
CUE_MAX_SECONDS = 7.0
CUE_MAX_CHARS = 84
CUE_LINE_CHARS = 42

Destination = str | Path | TextIO


# --- shared helpers -----------------------------------------------------------


def _write(text: str, destination: Destination) -> None:
    if not isinstance(destination, str | Path):
        destination.write(text)
        return
    # newline="\n": identical bytes on every OS, so files diff and hash cleanly.
    with open(destination, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _one_line(text: str) -> str:
    """Collapse all whitespace: line-based formats break on embedded newlines."""
    return " ".join(text.split())


def _token(name: str, fallback: str) -> str:
    """A name usable as one whitespace-separated field (RTTM, STM)."""
    token = re.sub(r"\s+", "_", name.strip())
    return token or fallback


def _speaker_token(transcript: Transcript, turn: Turn) -> str:
    return _token(transcript.display_name(turn.speaker), _token(turn.speaker, "unknown"))


def default_uri(transcript: Transcript) -> str:
    """Recording id for RTTM/STM/SegLST: the audio file's stem."""
    if transcript.audio_path:
        return _token(Path(transcript.audio_path).stem, "audio")
    return "audio"


def _clock(seconds: float, decimals: int, separator: str = ".") -> str:
    """``HH:MM:SS<sep>fff`` with rounding done once, on the integer units."""
    scale = 10**decimals
    # Half up, not Python's half-to-even: 0.25 s and 1.75 s should both round up.
    units = max(0, math.floor(seconds * scale + 0.5))
    whole, fraction = divmod(units, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{clock}{separator}{fraction:0{decimals}d}" if decimals else clock


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


# --- TXT -------------------------------------------------------------------------


def render_txt(transcript: Transcript) -> str:
    paragraphs = []
    for turn in transcript.sorted_turns():
        span = f"[{_clock(turn.start, 1)} - {_clock(turn.end, 1)}]"
        name = transcript.display_name(turn.speaker)
        paragraphs.append(f"{span} {name}: {_one_line(turn.text)}".rstrip())
    return "\n\n".join(paragraphs) + "\n" if paragraphs else ""


def write_txt(transcript: Transcript, destination: Destination) -> None:
    _write(render_txt(transcript), destination)


# --- subtitles (SRT, VTT) --------------------------------------------------------


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    speaker: str  # display name
    text: str
    cue_id: str


def _timed_tokens(turn: Turn) -> list[tuple[str, float, float]]:
    """Words with times; for edited text the times are spread over the turn.

    A correction no longer matches the recognised words one to one, so its
    tokens get times in proportion to their length within the turn.
    """
    if turn.edited_text is None:
        return [(w.text, w.start, w.end) for w in turn.words if w.text.strip()]
    tokens = turn.edited_text.split()
    total = sum(len(token) + 1 for token in tokens) or 1
    span = max(0.0, turn.end - turn.start)
    timed, offset = [], 0
    for token in tokens:
        start = turn.start + span * offset / total
        offset += len(token) + 1
        timed.append((token, start, turn.start + span * offset / total))
    return timed


def _chunk(tokens: list[tuple[str, float, float]]) -> list[list[tuple[str, float, float]]]:
    """Greedy split at word boundaries so each chunk fits one readable cue."""
    chunks: list[list[tuple[str, float, float]]] = []
    current: list[tuple[str, float, float]] = []
    for token in tokens:
        if current:
            chars = len(" ".join(t[0] for t in current)) + 1 + len(token[0])
            seconds = token[2] - current[0][1]
            if chars > CUE_MAX_CHARS or seconds > CUE_MAX_SECONDS:
                chunks.append(current)
                current = []
        current.append(token)
    if current:
        chunks.append(current)
    return chunks


def _turn_cues(transcript: Transcript, turn: Turn) -> list[Cue]:
    chunks = _chunk(_timed_tokens(turn))
    speaker = transcript.display_name(turn.speaker)
    cues = []
    for index, chunk in enumerate(chunks):
        # The outer cues reach the turn's bounds so the text shows for the whole turn.
        start = min(turn.start, chunk[0][1]) if index == 0 else chunk[0][1]
        end = max(turn.end, chunk[-1][2]) if index == len(chunks) - 1 else chunk[-1][2]
        cue_id = f"turn-{turn.turn_id}" + (f"-{index + 1}" if len(chunks) > 1 else "")
        text = " ".join(token[0] for token in chunk)
        cues.append(Cue(start, max(start, end), speaker, text, cue_id))
    return cues


def subtitle_cues(transcript: Transcript) -> list[Cue]:
    """Cues of every turn with text, in start order (overlapping turns overlap)."""
    cues = [cue for turn in transcript.turns for cue in _turn_cues(transcript, turn)]
    return sorted(cues, key=lambda cue: (cue.start, cue.end, cue.cue_id))


def _wrap(text: str, width: int = CUE_LINE_CHARS) -> str:
    """Break a cue into two balanced lines when it is longer than one line."""
    if len(text) <= width or " " not in text:
        return text
    middle = len(text) // 2
    spaces = [i for i, char in enumerate(text) if char == " "]
    split = min(spaces, key=lambda i: abs(i - middle))
    return f"{text[:split]}\n{text[split + 1 :]}"


def _srt_text(text: str) -> str:
    # SRT has no escape syntax: a blank line would end the cue and "-->" could
    # be taken for a timing line, so both are removed rather than escaped.
    return _one_line(text).replace("-->", "->")


def render_srt(transcript: Transcript) -> str:
    blocks = []
    for number, cue in enumerate(subtitle_cues(transcript), start=1):
        timing = f"{_clock(cue.start, 3, ',')} --> {_clock(cue.end, 3, ',')}"
        body = _wrap(_srt_text(f"{cue.speaker}: {cue.text}"))
        blocks.append(f"{number}\n{timing}\n{body}\n")
    return "\n".join(blocks)


def write_srt(transcript: Transcript, destination: Destination) -> None:
    _write(render_srt(transcript), destination)


def _vtt_escape(text: str) -> str:
    # WebVTT cue text: & and < start markup, and > must not follow "--".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    for cue in subtitle_cues(transcript):
        timing = f"{_clock(cue.start, 3)} --> {_clock(cue.end, 3)}"
        voice = _vtt_escape(_one_line(cue.speaker))
        body = _wrap(_vtt_escape(_one_line(cue.text)))
        # The voice span holds for the whole cue, across the line break.
        blocks.append(f"{cue.cue_id}\n{timing}\n<v {voice}>{body}</v>\n")
    return "\n".join(blocks)


def write_vtt(transcript: Transcript, destination: Destination) -> None:
    _write(render_vtt(transcript), destination)


# --- JSON ------------------------------------------------------------------------


def render_json(transcript: Transcript) -> str:
    data: dict[str, Any] = {"format": JSON_FORMAT, "version": JSON_VERSION}
    data.update(transcript.to_dict())
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_json(transcript: Transcript, destination: Destination) -> None:
    _write(render_json(transcript), destination)


# --- RTTM ------------------------------------------------------------------------


def render_rttm(transcript: Transcript, uri: str | None = None) -> str:
    uri = _token(uri, "audio") if uri else default_uri(transcript)
    lines = []
    for turn in transcript.sorted_turns():
        speaker = _speaker_token(transcript, turn)
        # where the speaker is heard: a turn can hold long stretches without words
        for start, end in turn.speech_spans():
            lines.append(
                f"SPEAKER {uri} {turn.channel + 1} {_seconds(start)} {_seconds(end - start)} "
                f"<NA> <NA> {speaker} <NA> <NA>"
            )
    return "".join(line + "\n" for line in lines)


def write_rttm(transcript: Transcript, destination: Destination, uri: str | None = None) -> None:
    _write(render_rttm(transcript, uri), destination)


# --- SegLST (meeteval) ----------------------------------------------------------


def seglst_segments(transcript: Transcript, uri: str | None = None) -> list[dict[str, Any]]:
    session = uri or default_uri(transcript)
    return [
        {
            "session_id": session,
            "speaker": transcript.display_name(turn.speaker),
            "start_time": round(turn.start, 3),
            "end_time": round(turn.end, 3),
            "words": _one_line(turn.text),
            "channel": turn.channel + 1,
        }
        for turn in transcript.sorted_turns()
    ]


def render_seglst(transcript: Transcript, uri: str | None = None) -> str:
    return json.dumps(seglst_segments(transcript, uri), indent=2, ensure_ascii=False) + "\n"


def write_seglst(transcript: Transcript, destination: Destination, uri: str | None = None) -> None:
    _write(render_seglst(transcript, uri), destination)


# --- STM -------------------------------------------------------------------------


def render_stm(transcript: Transcript, uri: str | None = None) -> str:
    uri = _token(uri, "audio") if uri else default_uri(transcript)
    # sclite requires STM sorted by recording, channel and start time.
    turns = sorted(transcript.turns, key=lambda t: (t.channel, t.start, t.end, t.turn_id))
    lines = []
    for turn in turns:
        fields = [uri, str(turn.channel + 1), _speaker_token(transcript, turn)]
        fields += [_seconds(turn.start), _seconds(max(turn.start, turn.end))]
        text = _one_line(turn.text)
        lines.append(" ".join(fields + [text]) if text else " ".join(fields))
    return "".join(line + "\n" for line in lines)


def write_stm(transcript: Transcript, destination: Destination, uri: str | None = None) -> None:
    _write(render_stm(transcript, uri), destination)


# --- registry --------------------------------------------------------------------

FORMATS: dict[str, tuple[str, Callable[[Transcript], str]]] = {
    "txt": (".txt", render_txt),
    "srt": (".srt", render_srt),
    "vtt": (".vtt", render_vtt),
    "json": (".json", render_json),
    "rttm": (".rttm", render_rttm),
    "seglst": (".seglst.json", render_seglst),
    "stm": (".stm", render_stm),
}


def write_format(transcript: Transcript, fmt: str, destination: Destination) -> None:
    """Write ``transcript`` in the format named ``fmt`` (a key of FORMATS)."""
    try:
        _, render = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from None
    _write(render(transcript), destination)
