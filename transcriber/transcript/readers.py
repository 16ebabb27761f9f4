"""Read transcripts back: our JSON, meeteval's SegLST and RTTM.

SegLST and RTTM carry display names, not speaker ids, so a transcript read from
them uses the names as ids and has no ``speaker_names``. Their channels are
1-based, as the exporters write them; the transcript's are 0-based.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transcriber.transcript.exporters import JSON_FORMAT
from transcriber.transcript.model import Transcript, Turn, Word

PathLike = str | Path


def read_json(path: PathLike) -> Transcript:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a transcript JSON object (a SegLST file? use read_seglst)")
    declared = data.get("format", JSON_FORMAT)
    if declared != JSON_FORMAT:
        raise ValueError(f"{path}: format {declared!r} is not {JSON_FORMAT!r}")
    return Transcript.from_dict(data)


def read_seglst(path: PathLike, session_id: str | None = None) -> Transcript:
    """Segments of one session become turns; ``words`` text becomes timed words.

    SegLST has no word times, so each word gets a share of its segment in
    proportion to its length: close enough for subtitles and word counts.
    """
    data = _load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: SegLST must be a JSON list of segments")
    segments = _one_session(data, session_id, path, key="session_id")
    segments.sort(key=lambda s: (float(s["start_time"]), float(s["end_time"])))
    turns = [_seglst_turn(index, segment) for index, segment in enumerate(segments)]
    return _transcript(turns)


def read_rttm(path: PathLike, uri: str | None = None) -> Transcript:
    """SPEAKER lines of one recording become turns without words."""
    rows = [_rttm_row(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    rows = _one_session([row for row in rows if row is not None], uri, path, key="uri")
    rows.sort(key=lambda row: (row["start"], row["end"]))
    turns = [
        Turn(turn_id=i, speaker=r["speaker"], channel=r["channel"], start=r["start"], end=r["end"])
        for i, r in enumerate(rows)
    ]
    return _transcript(turns)


def read_transcript(path: PathLike) -> Transcript:
    """Pick the reader from the file name (``.seglst.json`` before ``.json``)."""
    name = Path(path).name.lower()
    if name.endswith(".seglst.json"):
        return read_seglst(path)
    if name.endswith(".json"):
        # meeteval writes SegLST as plain .json too; the top level tells them apart.
        return read_seglst(path) if isinstance(_load_json(path), list) else read_json(path)
    if name.endswith(".rttm"):
        return read_rttm(path)
    raise ValueError(f"{path}: no reader for this extension (.json, .seglst.json, .rttm)")


# --- helpers -----------------------------------------------------------------


def _load_json(path: PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _one_session(items: list[dict[str, Any]], wanted: str | None, path: PathLike, key: str) -> list[dict[str, Any]]:
    """Keep one recording's items; several without a choice is an error, not a merge."""
    sessions = sorted({str(item.get(key, "")) for item in items})
    if wanted is not None:
        return [item for item in items if str(item.get(key, "")) == wanted]
    if len(sessions) > 1:
        raise ValueError(f"{path}: holds {len(sessions)} recordings ({', '.join(sessions)}); pick one")
    return list(items)


def _seglst_turn(turn_id: int, segment: dict[str, Any]) -> Turn:
    start, end = float(segment["start_time"]), float(segment["end_time"])
    words = segment.get("words", "")
    text = " ".join(words) if isinstance(words, list) else str(words)
    return Turn(
        turn_id=turn_id,
        speaker=str(segment["speaker"]),
        channel=max(0, int(segment.get("channel", 1)) - 1),
        start=start,
        end=end,
        words=_spread_words(text.split(), start, end),
    )


def _spread_words(tokens: list[str], start: float, end: float) -> list[Word]:
    total = sum(len(token) + 1 for token in tokens) or 1
    span = max(0.0, end - start)
    words, offset = [], 0
    for token in tokens:
        word_start = start + span * offset / total
        offset += len(token) + 1
        # The trailing space of each token is the gap before the next word.
        word_end = start + span * (offset - 1) / total
        words.append(Word(text=token, start=word_start, end=word_end))
    return words


def _rttm_row(line: str) -> dict[str, Any] | None:
    fields = line.split()
    if len(fields) < 8 or fields[0] != "SPEAKER":
        return None  # blank lines, comments and non-speaker records (LEXEME...)
    start, duration = float(fields[3]), float(fields[4])
    try:
        channel = max(0, int(fields[2]) - 1)
    except ValueError:
        channel = 0  # some tools write <NA> or letters for the channel
    return {
        "uri": fields[1],
        "channel": channel,
        "start": start,
        "end": start + duration,
        "speaker": fields[7],
    }


def _transcript(turns: list[Turn]) -> Transcript:
    duration = max((turn.end for turn in turns), default=0.0)
    return Transcript(turns=turns, duration=duration)
