"""Turn the engine's event stream into a :class:`Transcript`.

The builder is the single place where events become transcript state, so the
GUI, the command line and the tests all see the same transcript for the same
events. It is plain Python (no Qt) and keeps no reference to the engine.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from transcriber.engine.events import (
    CostSample,
    Event,
    PartialText,
    SpeakerRelabelled,
    TurnBoundaryMoved,
    TurnDiscarded,
    TurnEnded,
    TurnRevised,
    TurnSplit,
    TurnStarted,
    WordsCommitted,
)
from transcriber.transcript.model import Transcript, Turn

# Speaker given to a turn whose words arrive before its TurnStarted; TurnEnded
# carries the real speaker and replaces it.
UNKNOWN_SPEAKER = "unknown"


class CostAccumulator:
    """Running totals of CostSample events, summarised as a JSON-ready dict."""

    def __init__(self) -> None:
        self.stage_seconds: dict[str, float] = {}
        self.stage_flops: dict[str, float] = {}
        self.samples = 0
        self.channel_audio_seconds = 0.0  # sum over samples: both channels count
        self.max_backlog = 0.0
        self._weighted_blocks = 0.0
        self.sub_blocks_run = 0
        self.sub_blocks_offered = 0
        self._weighted_layers: list[list[float]] = []  # per layer: attention, MLP
        self._layers_seconds = 0.0
        # Disjoint, sorted [start, end] intervals: the recording covered, so that
        # two channels processing the same second count it once.
        self._covered: list[tuple[float, float]] = []

    def add(self, sample: CostSample) -> None:
        self.samples += 1
        for stage, seconds in sample.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + float(seconds)
        for stage, flops in sample.stage_flops.items():
            self.stage_flops[stage] = self.stage_flops.get(stage, 0.0) + float(flops)
        span = max(0.0, sample.audio_end - sample.audio_start)
        self.channel_audio_seconds += span
        self._weighted_blocks += span * sample.encoder_blocks_run
        self.sub_blocks_run += sample.encoder_sub_blocks[0]
        self.sub_blocks_offered += sample.encoder_sub_blocks[1]
        if sample.encoder_layers_run:
            if len(self._weighted_layers) != len(sample.encoder_layers_run):
                self._weighted_layers = [[0.0, 0.0] for _ in sample.encoder_layers_run]
            for total, (attention, mlp) in zip(self._weighted_layers, sample.encoder_layers_run, strict=True):
                total[0] += span * attention
                total[1] += span * mlp
            self._layers_seconds += span
        self.max_backlog = max(self.max_backlog, sample.backlog)
        if span > 0.0:
            self._cover(sample.audio_start, sample.audio_end)

    def _cover(self, start: float, end: float) -> None:
        # Samples mostly arrive in time order, so the search lands at the end and
        # the merge touches one neighbour.
        i = bisect.bisect_left(self._covered, (start, end))
        if i > 0 and self._covered[i - 1][1] >= start:
            i -= 1
            start = self._covered[i][0]
        j = i
        while j < len(self._covered) and self._covered[j][0] <= end:
            end = max(end, self._covered[j][1])
            j += 1
        self._covered[i:j] = [(start, end)]

    @property
    def audio_seconds(self) -> float:
        return sum(end - start for start, end in self._covered)

    @property
    def mean_encoder_blocks_run(self) -> float:
        if self.channel_audio_seconds <= 0.0:
            return 1.0
        return self._weighted_blocks / self.channel_audio_seconds

    def summary(self) -> dict[str, Any]:
        total_seconds = sum(self.stage_seconds.values())
        audio = self.audio_seconds
        return {
            "samples": self.samples,
            "stage_seconds": dict(self.stage_seconds),
            "stage_flops": dict(self.stage_flops),
            "total_seconds": total_seconds,
            "total_flops": sum(self.stage_flops.values()),
            "audio_seconds": audio,
            "channel_audio_seconds": self.channel_audio_seconds,
            "real_time_factor": total_seconds / audio if audio > 0.0 else 0.0,
            "mean_encoder_blocks_run": self.mean_encoder_blocks_run,
            # over every frame the encoder saw: what the arbitrators let run
            "encoder_sub_blocks_run": self.sub_blocks_run,
            "encoder_sub_blocks_offered": self.sub_blocks_offered,
            "encoder_layers_run": [
                {"attention": a / self._layers_seconds, "mlp": m / self._layers_seconds}
                for a, m in self._weighted_layers
            ]
            if self._layers_seconds > 0.0
            else [],
            "max_backlog": self.max_backlog,
        }


class TranscriptBuilder:
    """Applies engine events, one at a time, to a transcript."""

    def __init__(self, transcript: Transcript | None = None) -> None:
        self.transcript = transcript if transcript is not None else Transcript()
        self._turns: dict[int, Turn] = {turn.turn_id: turn for turn in self.transcript.turns}
        self._open: dict[int, None] = {}  # insertion-ordered set of open turn ids
        self._partials: dict[int, str] = {}
        self._cost = CostAccumulator()

    # --- queries -------------------------------------------------------------

    @property
    def open_turns(self) -> list[int]:
        """Ids of turns started but not yet ended, oldest first."""
        return list(self._open)

    def is_open(self, turn_id: int) -> bool:
        return turn_id in self._open

    def partial_text(self, turn_id: int) -> str:
        """The latest uncommitted hypothesis of an open turn ("" if none)."""
        return self._partials.get(turn_id, "")

    # --- events --------------------------------------------------------------

    def apply(self, event: Event) -> None:
        match event:
            case TurnStarted():
                self._on_turn_started(event)
            case PartialText():
                self._on_partial(event)
            case WordsCommitted():
                self._on_words(event)
            case TurnRevised():
                self._on_revised(event)
            case TurnEnded():
                self._on_turn_ended(event)
            case SpeakerRelabelled():
                self._on_relabel(event)
            case TurnSplit():
                self._on_split(event)
            case TurnBoundaryMoved():
                self._on_boundary_moved(event)
            case TurnDiscarded():
                self._on_discarded(event)
            case CostSample():
                self._on_cost(event)
            case _:
                raise TypeError(f"not an engine event: {event!r}")

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def _on_turn_started(self, event: TurnStarted) -> None:
        turn = self._get_or_create(event.turn_id, event.channel, event.start)
        turn.speaker = self.transcript.resolve(event.speaker)
        turn.start = event.start
        turn.end = max(turn.end, event.start)
        self._open[event.turn_id] = None
        self._see(event.start)

    def _on_partial(self, event: PartialText) -> None:
        # A partial for a turn that already ended is a late straggler: showing it
        # would resurrect text the engine has finalised.
        if event.turn_id in self._open:
            self._partials[event.turn_id] = event.text
        self._see(event.audio_time)

    def _on_words(self, event: WordsCommitted) -> None:
        self._set_words(event, replace=False)

    def _on_revised(self, event: TurnRevised) -> None:
        self._set_words(event, replace=True)

    def _set_words(self, event: WordsCommitted | TurnRevised, replace: bool) -> None:
        """Append committed words, or put a revision in place of the turn's words."""
        first_start = event.words[0].start if event.words else event.audio_time
        turn = self._get_or_create(event.turn_id, event.channel, first_start)
        if replace:
            turn.words = list(event.words)
        else:
            turn.words.extend(event.words)
        for word in event.words:
            turn.start = min(turn.start, word.start)
            turn.end = max(turn.end, word.end)
            self._see(word.end)
        # The old partial covered these words; keeping it would show them twice
        # until the next PartialText arrives.
        self._partials.pop(event.turn_id, None)
        self._see(event.audio_time)

    def _on_turn_ended(self, event: TurnEnded) -> None:
        turn = self._get_or_create(event.turn_id, event.channel, event.start)
        turn.speaker = self.transcript.resolve(event.speaker)
        turn.start = event.start
        turn.end = event.end
        self._open.pop(event.turn_id, None)
        self._partials.pop(event.turn_id, None)
        self._see(event.end)

    def _on_relabel(self, event: SpeakerRelabelled) -> None:
        turn = self._turns.get(event.turn_id)
        if turn is not None:
            turn.speaker = self.transcript.resolve(event.new_speaker)

    def _on_split(self, event: TurnSplit) -> None:
        turn = self._turns.get(event.turn_id)
        if turn is None:
            return
        # the split time comes from word times, which can stray outside the turn (a
        # second split of the same stretch may even come before the first): inside
        # the turn, both pieces keep start <= end
        at = _clamped(event.at, turn.start, turn.end)
        moved = self._get_or_create(event.new_turn_id, event.channel, at)
        moved.speaker = self.transcript.resolve(event.speaker)
        moved.start = at
        moved.end = max(turn.end, at)
        moved.words = turn.words[event.keep_words :] + moved.words
        turn.words = turn.words[: event.keep_words]
        turn.end = at

    def _on_boundary_moved(self, event: TurnBoundaryMoved) -> None:
        first, second = self._turns.get(event.turn_id), self._turns.get(event.next_turn_id)
        if first is None or second is None:
            return
        at = _clamped(event.at, first.start, second.end)
        words = first.words + second.words
        first.words, second.words = words[: event.keep_words], words[event.keep_words :]
        first.end = at
        second.start = at
        second.end = max(second.end, at)

    def _on_discarded(self, event: TurnDiscarded) -> None:
        turn = self._turns.pop(event.turn_id, None)
        if turn is not None:
            self.transcript.turns.remove(turn)
        self._open.pop(event.turn_id, None)
        self._partials.pop(event.turn_id, None)

    def _on_cost(self, event: CostSample) -> None:
        self._cost.add(event)
        self.transcript.cost_summary = self._cost.summary()
        self._see(event.audio_end)

    # --- helpers -------------------------------------------------------------

    def _get_or_create(self, turn_id: int, channel: int, start: float) -> Turn:
        turn = self._turns.get(turn_id)
        if turn is None:
            # Tolerate events that arrive without a TurnStarted rather than drop
            # words: losing text is worse than a provisional speaker label.
            turn = Turn(turn_id=turn_id, speaker=UNKNOWN_SPEAKER, channel=channel, start=start, end=start)
            self._turns[turn_id] = turn
            self.transcript.turns.append(turn)
        return turn

    def _see(self, time: float) -> None:
        self.transcript.duration = max(self.transcript.duration, time)


def _clamped(time: float, start: float, end: float) -> float:
    """``time`` moved inside [start, end] (an end before the start counts as the start)."""
    return min(max(time, start), max(end, start))
