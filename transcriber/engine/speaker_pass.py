"""A last pass over a finished file: each speaker's turns decoded again, one after another.

In a meeting a person's sentence is often cut by someone else's turn: "... but
were" | another voice | "on the ground in the first place". Decoded where it was
said, each piece is heard without the rest of its sentence, and Whisper mishears
the edges ("but we are"). Once a file's speakers are settled, this pass joins each
speaker's turns in the order they were said (with a short silence between them,
up to a section of Whisper's window) and decodes them again with the second pass
(``SecondPass.revise``: its guards keep the words of the turns where the decode
fails them); each word goes back to the turn whose audio it lies in. Comparing
each utterance's words in 24 simulated 0S meetings with the same utterance
decoded whole, the meetings had 233 errors against 186 whole (0L: 219 against
186), most of them at such edges.

The file is read once more from its start, and only the audio of the turns that
wait for their section to fill is kept (at most a section per speaker), so that
memory does not grow with the file's length (not yet measured over an hour).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from transcriber.engine.engine import StreamingEngine
from transcriber.engine.events import Event, TurnRevised
from transcriber.engine.transducer import SecondPass, StepCost
from transcriber.transcript.model import Transcript, Turn, Word
from transcriber.whisper.decoding import TimedWord

SAMPLE_RATE = 16000
# the most audio of one speaker's turns decoded together, gaps included: the second
# pass's own section length (Whisper's 30 s window less padding and lookahead)
SECTION_SECONDS = 25.0
# silence between two turns of one speaker in a section
GAP_SECONDS = 0.3


@dataclass
class _Section:
    """Turns of one speaker, in order, decoded together."""

    turns: list[Turn]
    audio: dict[int, list[np.ndarray]] = field(default_factory=dict)  # turn id -> its samples so far

    @property
    def end(self) -> float:
        return self.turns[-1].end


def speaker_sections(turns: Iterable[Turn], seconds: float = SECTION_SECONDS) -> list[_Section]:
    """Each speaker's turns (channel 0, with words) in order, cut into runs of at most
    ``seconds`` of audio and gaps; a longer turn is a section of its own."""
    sections: list[_Section] = []
    open_sections: dict[str, _Section] = {}
    lengths: dict[str, float] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        if turn.channel != 0 or not turn.words or turn.end - turn.start <= 0.05:
            continue
        duration = turn.end - turn.start
        section = open_sections.get(turn.speaker)
        if section is not None and lengths[turn.speaker] + GAP_SECONDS + duration <= seconds:
            section.turns.append(turn)
            lengths[turn.speaker] += GAP_SECONDS + duration
            continue
        section = _Section([turn])
        sections.append(section)
        open_sections[turn.speaker], lengths[turn.speaker] = section, duration
    return sections


def last_pass(
    engine: object, transcript: Transcript, blocks: Iterable[np.ndarray], cancel: threading.Event | None = None
) -> list[Event]:
    """The pass a file gets after its stream, where ``engine`` (a plain
    ``StreamingEngine``: the separator's second channel has audio of its own) is set
    up for it (``TransducerConfig.speaker_pass``): the revisions and their cost;
    nothing once ``cancel`` is set."""
    if not isinstance(engine, StreamingEngine) or not engine.config.transducer.speaker_pass:
        return []
    revisions, cost = revise_by_speaker(transcript, blocks, engine.second_pass, cancel)
    if cancel is not None and cancel.is_set():
        return []
    return [*revisions, *engine.account(cost, at=max(engine.time, transcript.duration))]


def revise_by_speaker(
    transcript: Transcript,
    blocks: Iterable[np.ndarray],
    second_pass: SecondPass,
    cancel: threading.Event | None = None,
) -> tuple[list[TurnRevised], StepCost]:
    """Decode each speaker's turns of ``transcript`` again together; ``blocks``: the
    file's 16 kHz audio from its start. Returns a ``TurnRevised`` for each turn whose
    words changed, and what the decoding cost; stops early once ``cancel`` is set."""
    sections = speaker_sections(transcript.turns)
    by_turn = {turn.turn_id: section for section in sections for turn in section.turns}
    turns = sorted((t for section in sections for t in section.turns), key=lambda t: t.start)
    waiting = sorted(sections, key=lambda section: section.end)
    said: dict[str, str] = {}  # each speaker's words so far, the prompt of their next section
    events: list[TurnRevised] = []
    cost = StepCost()
    position = 0  # samples read
    first_open = 0  # the turns before this one have all their audio
    for block in blocks:
        if cancel is not None and cancel.is_set():
            return events, cost
        block_start, position = position, position + len(block)
        for turn in turns[first_open:]:
            start, end = int(turn.start * SAMPLE_RATE), int(turn.end * SAMPLE_RATE)
            if start >= position:
                break
            if end > block_start:
                piece = block[max(0, start - block_start) : max(0, min(len(block), end - block_start))]
                by_turn[turn.turn_id].audio.setdefault(turn.turn_id, []).append(piece.copy())
        while first_open < len(turns) and int(turns[first_open].end * SAMPLE_RATE) <= position:
            first_open += 1
        while waiting and int(waiting[0].end * SAMPLE_RATE) <= position:
            events += _revise_section(waiting.pop(0), second_pass, said, cost)
    for section in waiting:  # the audio ended before them: what was read
        events += _revise_section(section, second_pass, said, cost)
    return events, cost


def _revise_section(
    section: _Section, second_pass: SecondPass, said: dict[str, str], cost: StepCost
) -> list[TurnRevised]:
    speaker = section.turns[0].speaker
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces: list[np.ndarray] = []
    places: list[tuple[float, float, Turn]] = []  # each turn's span in the joined audio
    at = 0.0
    for turn in section.turns:
        audio = np.concatenate(section.audio[turn.turn_id]) if turn.turn_id in section.audio else gap[:0]
        if pieces:
            pieces.append(gap)
            at += GAP_SECONDS
        places.append((at, at + len(audio) / SAMPLE_RATE, turn))
        pieces.append(audio)
        at += len(audio) / SAMPLE_RATE
    section.audio.clear()
    joined = np.concatenate(pieces).astype(np.float32)
    if len(joined) < SAMPLE_RATE // 10:
        return []
    tokenizer = second_pass.recognizer.tokenizer
    before = [
        TimedWord(
            word.text,
            min(offset + max(0.0, word.start - turn.start), until),
            min(offset + max(0.0, word.end - turn.start), until),
            word.confidence,
            tokenizer.encode(" " + word.text),
        )
        for offset, until, turn in places
        for word in turn.words
    ]
    revised, section_cost = second_pass.revise(joined, 0.0, before, said.get(speaker, ""))
    cost.add(section_cost)
    said[speaker] = " ".join([said.get(speaker, ""), *(w.text for w in revised)]).strip()[-2000:]
    words: dict[int, list[Word]] = {turn.turn_id: [] for turn in section.turns}
    for word in revised:
        middle = (word.start + word.end) / 2
        offset, until, turn = min(places, key=lambda p: max(p[0] - middle, middle - p[1], 0.0))
        start = turn.start + min(max(0.0, word.start - offset), until - offset)
        end = turn.start + min(max(0.0, word.end - offset), until - offset)
        words[turn.turn_id].append(Word(word.text, round(start, 3), round(max(start, end), 3), word.probability))
    return [
        TurnRevised(turn.turn_id, turn.channel, tuple(words[turn.turn_id]), turn.end)
        for turn in section.turns
        if words[turn.turn_id] and [w.text for w in words[turn.turn_id]] != [w.text for w in turn.words]
    ]
