"""Plain events that the engine emits.

Every event carries its channel (0 or 1: the separator's output) and times in
seconds of audio since the start of the stream. Consumers (the transcript
builder, the GUI, the command line) only ever see these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transcriber.transcript.model import Word


@dataclass(frozen=True)
class TurnStarted:
    """``<sot>``: a speaker turn opens."""

    turn_id: int
    channel: int
    speaker: str
    start: float


@dataclass(frozen=True)
class PartialText:
    """The current, not yet final hypothesis after the committed words."""

    turn_id: int
    channel: int
    text: str
    audio_time: float  # how far into the stream the hypothesis has heard


@dataclass(frozen=True)
class WordsCommitted:
    """Words that are final; they are appended to the turn."""

    turn_id: int
    channel: int
    words: tuple[Word, ...]
    audio_time: float  # stream position when the commit was made


@dataclass(frozen=True)
class TurnRevised:
    """The turn's final words from the second pass; they replace the words committed
    while it was open. Sent after its ``TurnEnded``, once the stretch of turns it
    belongs to is complete (the next pause longer than a second, or 25 s of audio)."""

    turn_id: int
    channel: int
    words: tuple[Word, ...]
    audio_time: float


@dataclass(frozen=True)
class TurnEnded:
    """``<eot>``: the turn closes."""

    turn_id: int
    channel: int
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class SpeakerRelabelled:
    """A later decision (e.g. the end-of-stream refinement) changed a turn's speaker."""

    turn_id: int
    channel: int
    old_speaker: str
    new_speaker: str


@dataclass(frozen=True)
class TurnDiscarded:
    """The turn holds no words after both passes: the VAD took noise or a breath for
    speech. It leaves the transcript. Sent after its ``TurnEnded``."""

    turn_id: int
    channel: int


@dataclass(frozen=True)
class TurnSplit:
    """A finished turn held two voices: its words after the first ``keep_words`` move
    to a new turn ``new_turn_id`` of ``speaker``, which runs from ``at`` to where the
    old turn ended; the old turn now ends at ``at``. Sent by the end-of-stream
    resegmentation, after the turn's ``TurnEnded`` and any ``TurnRevised``."""

    turn_id: int
    channel: int
    keep_words: int
    at: float
    new_turn_id: int
    speaker: str


@dataclass(frozen=True)
class TurnBoundaryMoved:
    """The change from a turn to the next one of the same channel (no pause between
    them: a live change of voice, found a word or two late) moves to ``at``, the pause
    between the two voices. Of the two turns' words together, in order, the first
    turn keeps ``keep_words`` and the next turn takes the rest. Sent at the end of
    the stream, after both turns' ``TurnEnded`` and any ``TurnRevised``."""

    turn_id: int
    next_turn_id: int
    channel: int
    at: float
    keep_words: int


@dataclass(frozen=True)
class CostSample:
    """What recognition cost for one stretch of audio.

    ``stage_seconds`` is wall time per stage (``vad``, ``embedding``,
    ``encoder``, ``decoder``...), ``stage_flops`` estimated floating point
    operations per stage; both for the audio between ``audio_start`` and
    ``audio_end``. ``backlog`` is audio received but not yet recognised.
    ``encoder_blocks_run`` is the fraction of encoder sub-blocks evaluated;
    ``encoder_layers_run`` the fraction of frames each layer's (self-attention,
    MLP) ran for, from the arbitrators' decisions (empty: not counted);
    ``encoder_sub_blocks`` the counts behind ``encoder_blocks_run``.
    """

    channel: int
    audio_start: float
    audio_end: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_flops: dict[str, float] = field(default_factory=dict)
    backlog: float = 0.0
    encoder_blocks_run: float = 1.0
    encoder_layers_run: tuple[tuple[float, float], ...] = ()
    encoder_sub_blocks: tuple[int, int] = (0, 0)  # evaluations (per frame) run, offered


Event = (
    TurnStarted
    | PartialText
    | WordsCommitted
    | TurnRevised
    | TurnEnded
    | TurnDiscarded
    | SpeakerRelabelled
    | TurnSplit
    | TurnBoundaryMoved
    | CostSample
)
