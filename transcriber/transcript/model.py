"""The transcript: speaker turns with timed words.

Times are seconds of audio (floats) from the start of the recording. Speaker
ids (``"S1"``, ``"S2"``...) are what the engine assigns; display names are kept
apart in ``Transcript.speaker_names`` so that renaming a speaker never rewrites
the turns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Where a turn's speaker is heard (Turn.speech_spans): up to SPEECH_EDGE_SECONDS
# around its words, in pieces where they pause for SPEECH_GAP_SECONDS or more
SPEECH_EDGE_SECONDS = 0.5
SPEECH_GAP_SECONDS = 1.0


@dataclass
class Word:
    text: str  # without surrounding spaces; punctuation stays attached
    start: float
    end: float
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Word:
        return cls(
            text=str(data["text"]),
            start=float(data["start"]),
            end=float(data["end"]),
            confidence=float(data.get("confidence", 1.0)),
        )


@dataclass
class Turn:
    turn_id: int
    speaker: str
    channel: int
    start: float
    end: float
    words: list[Word] = field(default_factory=list)
    edited_text: str | None = None  # set when a person corrected the text

    @property
    def text(self) -> str:
        if self.edited_text is not None:
            return self.edited_text
        return " ".join(word.text for word in self.words)

    def speech_spans(
        self, edge: float = SPEECH_EDGE_SECONDS, gap: float = SPEECH_GAP_SECONDS
    ) -> list[tuple[float, float]]:
        """Where in the turn its speaker is heard: around its words (``edge`` seconds
        either side, inside the turn), in pieces where the words pause for ``gap``
        seconds or more; the whole turn when it has no words. A turn runs from pause to
        pause, and the voice activity detector takes room noise and far-off talk for
        voice: one AMI excerpt had a turn of 12 s around two words. The RTTM export
        (and the DER scored from it) gives these spans."""
        if not self.words:
            return [(self.start, self.end)] if self.end > self.start else []
        spans: list[list[float]] = []
        words_end = 0.0  # where the words of the last span end
        for word in sorted(self.words, key=lambda w: w.start):
            start, end = max(self.start, word.start - edge), min(self.end, max(word.end, word.start) + edge)
            if spans and word.start - words_end < gap:
                spans[-1][1] = max(spans[-1][1], end)
                words_end = max(words_end, word.end)
            else:
                spans.append([start, end])
                words_end = word.end
        return [(start, end) for start, end in spans if end > start]

    def to_dict(self) -> dict[str, Any]:
        return {
            "turn_id": self.turn_id,
            "speaker": self.speaker,
            "channel": self.channel,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "edited_text": self.edited_text,
            "words": [word.to_dict() for word in self.words],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        return cls(
            turn_id=int(data["turn_id"]),
            speaker=str(data["speaker"]),
            channel=int(data.get("channel", 0)),
            start=float(data["start"]),
            end=float(data["end"]),
            words=[Word.from_dict(w) for w in data.get("words", [])],
            edited_text=data.get("edited_text"),
        )


@dataclass
class Transcript:
    turns: list[Turn] = field(default_factory=list)
    speaker_names: dict[str, str] = field(default_factory=dict)  # speaker id -> display name
    audio_path: str | None = None
    duration: float = 0.0  # seconds of audio
    cost_summary: dict[str, Any] = field(default_factory=dict)
    # speakers a person merged into another: absorbed id -> kept id; later turns the
    # engine gives the absorbed id land with the kept one
    merged_speakers: dict[str, str] = field(default_factory=dict)

    def resolve(self, speaker: str) -> str:
        """The id a speaker is shown under, after merges."""
        seen = set()
        while speaker in self.merged_speakers and speaker not in seen:
            seen.add(speaker)
            speaker = self.merged_speakers[speaker]
        return speaker

    def display_name(self, speaker: str) -> str:
        return self.speaker_names.get(speaker, speaker)

    @property
    def speakers(self) -> list[str]:
        """Speaker ids in order of first appearance."""
        seen: dict[str, None] = {}
        for turn in self.sorted_turns():
            seen.setdefault(turn.speaker, None)
        return list(seen)

    def sorted_turns(self) -> list[Turn]:
        return sorted(self.turns, key=lambda t: (t.start, t.channel, t.turn_id))

    def turn(self, turn_id: int) -> Turn:
        for turn in self.turns:
            if turn.turn_id == turn_id:
                return turn
        raise KeyError(turn_id)

    def rename_speaker(self, speaker: str, name: str) -> None:
        self.speaker_names[speaker] = name

    def merge_speakers(self, keep: str, absorb: str) -> None:
        """Reassign every turn of ``absorb`` to ``keep``, now and for turns still to come."""
        keep, absorb = self.resolve(keep), self.resolve(absorb)
        if keep == absorb:
            return
        for turn in self.turns:
            if turn.speaker == absorb:
                turn.speaker = keep
        self.speaker_names.pop(absorb, None)
        self.merged_speakers[absorb] = keep

    def to_dict(self) -> dict[str, Any]:
        return {
            "audio_path": self.audio_path,
            "duration": self.duration,
            "speaker_names": dict(self.speaker_names),
            "speakers": self.speakers,
            "turns": [turn.to_dict() for turn in self.sorted_turns()],
            "cost_summary": dict(self.cost_summary),
            "merged_speakers": dict(self.merged_speakers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            turns=[Turn.from_dict(t) for t in data.get("turns", [])],
            speaker_names=dict(data.get("speaker_names", {})),
            audio_path=data.get("audio_path"),
            duration=float(data.get("duration", 0.0)),
            cost_summary=dict(data.get("cost_summary", {})),
            merged_speakers=dict(data.get("merged_speakers", {})),
        )
