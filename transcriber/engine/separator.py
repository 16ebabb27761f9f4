"""Separator: routes the stream into up to two channels (STS's separator stage).

While one person talks, everything goes to the *primary* channel. The overlap
detector (overlap.py) marks where a second voice joins for at least
``min_overlap_seconds``. When the overlap ends, one voice goes on: the router
waits for ``decision_seconds`` of it and compares its embedding with the
primary's voice from before the overlap. The same voice keeps the primary
channel; another voice goes on in the other channel, which becomes the
primary, with turns, speaker and Whisper context of its own. A channel that is
off is fed silence, so its voice activity detector ends its turn where its
voice stopped. Each channel is a whole segmenter and transducer
(engine.StreamingEngine); the two share the speakers and the turn numbers.

The overlapped stretch itself is not separated. By default it goes to the
primary channel only: Whisper on the mixture follows one voice, and a second
channel fed the mixture mostly wrote the same words again
(``overlap_to_both=True`` does that, opening the other channel from just
before the overlap; the duplicates a false alarm leaves are removed at the end
of the stream by ``without_repeated_speech``).

Measured (benchmarks/benchmark_engine.py, 4 simulated meetings per
condition, tiny.en): the routing does not yet lower cpWER on OV20-OV40 (see
the issue-5 notes); it is off unless asked for.

Decisions wait for evidence, so a channel's audio reaches its engine late:
the primary by the detector's delay (0.2 s), the other channel by
``min_overlap_seconds`` + ``onset_margin_seconds`` more, and both by up to
``decision_seconds`` after an overlap. Nothing is dropped: every frame goes to
at least one channel, in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from transcriber.engine.campplus import CamPlusPlusEncoder
from transcriber.engine.engine import EngineConfig, StreamingEngine, settle_speakers
from transcriber.engine.events import Event, TurnDiscarded, TurnRevised
from transcriber.engine.overlap import (
    DEFAULT_DETECTOR,
    ONE_SPEAKER,
    OVERLAP,
    SILENCE,
    OverlapDetector,
    OverlapStream,
    load_overlap_detector,
)
from transcriber.engine.speaker_encoder import SpeakerEncoder
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.model import Transcript
from transcriber.whisper.audio_features import HOP_LENGTH, SAMPLE_RATE

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH


@dataclass(frozen=True)
class SeparatorConfig:
    detector: str = DEFAULT_DETECTOR
    overlap_probability: float = 0.7  # 0.5 doubles the false alarms on one voice (7 % -> 13 % of frames)
    min_overlap_seconds: float = 0.5  # a second voice must last this long to open a channel
    onset_margin_seconds: float = 0.2  # the new channel starts this much before the detected onset
    end_seconds: float = 0.2  # this long without overlap ends an overlap
    decision_seconds: float = 1.5  # single voice after an overlap heard before deciding who goes on
    reference_seconds: float = 3.0  # the primary's voice before the overlap, for that decision
    # cosine similarity of the voice after an overlap to the one before, above which
    # it is the same voice (1.5 s vs 3 s: one voice scored 0.61-0.82 across a false overlap)
    same_voice_threshold: float = 0.55
    # the overlapped stretch goes to both channels, or only to the primary (the
    # other would mostly write the same words again: Whisper follows one voice)
    overlap_to_both: bool = False


class _State(Enum):
    SINGLE = "single"
    OVERLAP = "overlap"
    PENDING = "pending"  # the overlap ended; who goes on is not decided yet


def frame_class(probabilities: np.ndarray, overlap_probability: float) -> int:
    if probabilities[OVERLAP] >= overlap_probability:
        return OVERLAP
    return ONE_SPEAKER if probabilities[ONE_SPEAKER] + probabilities[OVERLAP] >= 0.5 else SILENCE


class ChannelRouter:
    """Audio in; per channel, the audio it gets (the mixture or silence), as decided."""

    def __init__(
        self, detector: OverlapDetector, speaker_encoder: SpeakerEncoder | CamPlusPlusEncoder, config: SeparatorConfig
    ):
        self.stream = OverlapStream(detector)
        self.speaker_encoder = speaker_encoder
        self.config = config
        self.audio = np.zeros(0, dtype=np.float32)
        self.audio_start = 0  # frame index of audio[0]
        self.classes: list[int] = []  # every classified frame's class
        # per channel: frame -> mixture (True) or silence, for decided frames not yet handed out
        self.routes: list[dict[int, bool]] = [{}, {}]
        self.decided = [0, 0]  # per channel: frames decided (and handed out, at the next _emit)
        self.primary = 0
        self.state = _State.SINGLE
        self.run = 0  # consecutive frames of overlap (SINGLE) or of no overlap (OVERLAP)
        self.onset = 0  # SINGLE: first frame of the current overlap run
        self.ended_at = 0  # PENDING: first frame after the overlap
        self.reference: np.ndarray | None = None  # PENDING: the primary's voice before the overlap
        self.seconds_spent = 0.0
        self.embeddings = 0
        self.overlaps = 0

    # -- input ------------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list[np.ndarray]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.audio = np.concatenate([self.audio, samples])
        started = time.perf_counter()
        probabilities = self.stream.feed(samples)
        self._classify(probabilities)
        self.seconds_spent += time.perf_counter() - started
        return self._emit(final=False)

    def finish(self) -> list[np.ndarray]:
        started = time.perf_counter()
        self._classify(self.stream.finish())
        self._settle()
        self.seconds_spent += time.perf_counter() - started
        return self._emit(final=True)

    # -- decisions --------------------------------------------------------------------------------
    def _classify(self, probabilities: np.ndarray) -> None:
        for row in probabilities:
            self.classes.append(frame_class(row, self.config.overlap_probability))
            self._step(len(self.classes) - 1)

    def _frames(self, seconds: float) -> int:
        return max(1, round(seconds * FRAMES_PER_SECOND))

    def _set(self, channel: int, last: int, on: bool) -> None:
        """Decide the channel's undecided frames up to ``last``: mixture (on) or silence."""
        for frame in range(self.decided[channel], last + 1):
            self.routes[channel][frame] = on
        self.decided[channel] = max(self.decided[channel], last + 1)

    def _set_both(self, last: int, on: tuple[bool, bool]) -> None:
        self._set(0, last, on[0])
        self._set(1, last, on[1])

    def _overlap_routes(self) -> tuple[bool, bool]:
        return (True, True) if self.config.overlap_to_both else self._only(self.primary)

    def _only(self, channel: int) -> tuple[bool, bool]:
        return (channel == 0, channel == 1)

    def _step(self, frame: int) -> None:
        config = self.config
        kind = self.classes[frame]
        primary, other = self.primary, 1 - self.primary
        if self.state is _State.SINGLE:
            self._set(primary, frame, True)
            if kind != OVERLAP:
                self.run = 0
            else:
                if self.run == 0:
                    self.onset = frame
                self.run += 1
                if self.run >= self._frames(config.min_overlap_seconds):
                    start = max(self.onset - self._frames(config.onset_margin_seconds), self.decided[other])
                    self._set(other, start - 1, False)
                    self._set(other, frame, config.overlap_to_both)
                    self.state, self.run = _State.OVERLAP, 0
                    self.overlaps += 1
                    self.reference = self._voice_before(start)
                    return
            # the other channel stays undecided for as long as an overlap could still open it
            held = self._frames(config.min_overlap_seconds) + self._frames(config.onset_margin_seconds)
            self._set(other, frame - held, False)
        elif self.state is _State.OVERLAP:
            self.run = self.run + 1 if kind != OVERLAP else 0
            if self.run >= self._frames(config.end_seconds):
                self.ended_at = frame - self.run + 1
                self._set_both(self.ended_at - 1, self._overlap_routes())
                self.state, self.run = _State.PENDING, 0
            else:
                self._set_both(frame - self.run, self._overlap_routes())
        else:
            self._step_pending(frame, kind)

    def _step_pending(self, frame: int, kind: int) -> None:
        config = self.config
        if kind == OVERLAP:
            self.run += 1
            if self.run >= self._frames(config.min_overlap_seconds):
                # a second overlap before anyone was decided: the two voices are still at it
                self._set_both(frame, self._overlap_routes())
                self.state, self.run = _State.OVERLAP, 0
            return
        self.run = 0
        span = range(self.ended_at, frame + 1)
        one_voice = sum(1 for k in span if self.classes[k] == ONE_SPEAKER)
        last_voiced = max((k for k in span if self.classes[k] != SILENCE), default=self.ended_at)
        if one_voice >= self._frames(config.decision_seconds) or frame - last_voiced >= self._frames(0.3):
            self._decide(frame)

    def _decide(self, frame: int) -> None:
        """Who goes on after the overlap: the primary's voice, or the newcomer's."""
        voiced = [k for k in range(self.ended_at, frame + 1) if self.classes[k] == ONE_SPEAKER]
        winner = self.primary
        if self.reference is not None and len(voiced) >= self._frames(0.3):
            after = np.concatenate([self._frame_audio(k) for k in voiced])
            embedding = self.speaker_encoder.embed(after)
            self.embeddings += 1
            if float(np.dot(embedding, self.reference)) < self.config.same_voice_threshold:
                winner = 1 - self.primary
        self._set_both(frame, self._only(winner))
        self.primary = winner
        self.state, self.run, self.reference = _State.SINGLE, 0, None

    def _settle(self) -> None:
        """End of stream: decide what waits for evidence that will not come."""
        last = len(self.classes) - 1
        if self.state is _State.PENDING:
            self._decide(last)
        elif self.state is _State.OVERLAP:
            self._set_both(last, self._overlap_routes())
        self._set_both(last, self._only(self.primary))

    def _voice_before(self, frame: int) -> np.ndarray | None:
        """Embedding of the primary's single voice in the seconds before ``frame``."""
        first = max(self.audio_start, frame - self._frames(self.config.reference_seconds))
        voiced = [k for k in range(first, frame) if self.classes[k] == ONE_SPEAKER]
        if len(voiced) < self._frames(0.5):
            return None
        self.embeddings += 1
        return self.speaker_encoder.embed(np.concatenate([self._frame_audio(k) for k in voiced]))

    def _frame_audio(self, frame: int) -> np.ndarray:
        offset = (frame - self.audio_start) * HOP_LENGTH
        return self.audio[offset : offset + HOP_LENGTH]

    # -- output -----------------------------------------------------------------------------------
    def _emit(self, final: bool) -> list[np.ndarray]:
        out = []
        for channel in (0, 1):
            routes = self.routes[channel]
            frames = [self._frame_audio(f) if routes[f] else np.zeros(HOP_LENGTH, np.float32) for f in sorted(routes)]
            routes.clear()
            if final:
                # the last samples, too short for a frame of their own
                tail = self.audio[(self.decided[channel] - self.audio_start) * HOP_LENGTH :]
                frames.append(tail if channel == self.primary else np.zeros_like(tail))
            out.append(np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32))
        self._forget()
        return out

    def _forget(self) -> None:
        """Keep the audio not handed out yet, and enough before it for a reference voice."""
        keep_from = min(self.decided) - self._frames(self.config.reference_seconds) - 1
        drop = keep_from - self.audio_start
        if drop > FRAMES_PER_SECOND:
            self.audio = self.audio[drop * HOP_LENGTH :]
            self.audio_start = keep_from


class SeparatingEngine:
    """The engine with the separator on: a router and one StreamingEngine per channel.
    Same interface as StreamingEngine (feed, finish, time)."""

    def __init__(self, primary: StreamingEngine, detector: OverlapDetector, config: SeparatorConfig):
        transducer = primary.config.transducer
        if transducer.speaker_pass:
            # a file's last pass is a plain engine's only (speaker_pass.last_pass): the
            # channels give their stretches of turns the second pass instead
            primary = primary.fresh(transducer=replace(transducer, revise_turns=True, speaker_pass=False))
        self.channels = [
            primary,
            StreamingEngine(
                primary.recognizer,
                primary.speaker_encoder,
                primary.config,
                channel=1,
                clustering=primary.clustering,
                turn_ids=primary.turn_ids,
            ),
        ]
        self.detector = detector
        self.separator_config = config
        self.router = ChannelRouter(detector, primary.speaker_encoder, config)
        self.samples_seen = 0
        self.router_seconds_charged = 0.0
        # the transcript so far, as the events build it: the end-of-stream check for
        # turns that hold the same speech twice reads it
        self.builder = TranscriptBuilder()

    @classmethod
    def create(cls, separator: SeparatorConfig | None = None, **options) -> SeparatingEngine:
        separator = separator or SeparatorConfig()
        return cls(StreamingEngine.create(**options), load_overlap_detector(separator.detector), separator)

    @property
    def config(self) -> EngineConfig:
        return self.channels[0].config

    @property
    def recognizer(self):  # noqa: ANN201 - the shared WhisperRecognizer
        return self.channels[0].recognizer

    @property
    def time(self) -> float:
        return self.samples_seen / SAMPLE_RATE

    def set_compute_budget(self, budget: float | None) -> None:
        self.channels[0].set_compute_budget(budget)

    def fresh(self, **changes) -> SeparatingEngine:
        return SeparatingEngine(self.channels[0].fresh(**changes), self.detector, self.separator_config)

    def feed(self, samples: np.ndarray) -> list[Event]:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += len(samples)
        return self._feed_channels(self.router.feed(samples))

    def finish(self) -> list[Event]:
        events = self._feed_channels(self.router.finish())
        for engine in self.channels:
            events += engine.end_stream()
        events += settle_speakers(self.channels)
        self.builder.apply_all(events)
        duplicates = without_repeated_speech(self.builder.transcript, self.time)
        self.builder.apply_all(duplicates)
        events += duplicates
        for engine in self.channels:
            events += engine._cost_sample(force=True)
        return events

    def _feed_channels(self, routed: list[np.ndarray]) -> list[Event]:
        spent = self.router.seconds_spent - self.router_seconds_charged
        self.channels[0]._charge("separator", spent, 0.0)
        self.router_seconds_charged = self.router.seconds_spent
        events: list[Event] = []
        for engine, audio in zip(self.channels, routed, strict=True):
            if len(audio):
                events += engine.feed(audio)
        self.builder.apply_all(events)
        return events


def without_repeated_speech(transcript: Transcript, now: float) -> list[Event]:
    """One person does not talk twice at once: where turns on the two channels
    overlap and ended up with the same speaker, the overlap was a false alarm (or
    its second voice was not told apart) and both channels wrote the same speech.
    The shorter turn loses its words inside the longer one's span (all of them:
    the turn is discarded)."""
    events: list[Event] = []
    turns = transcript.sorted_turns()
    dropped: set[int] = set()
    for i, first in enumerate(turns):
        for second in turns[i + 1 :]:
            if second.start >= first.end:
                break
            if first.channel == second.channel or first.speaker != second.speaker:
                continue
            if first.turn_id in dropped or second.turn_id in dropped:
                continue
            shorter, longer = sorted((first, second), key=lambda t: (t.end - t.start, t.channel == 0))
            kept = tuple(w for w in shorter.words if not longer.start <= (w.start + w.end) / 2 <= longer.end)
            if len(kept) == len(shorter.words):
                continue
            if kept:
                events.append(TurnRevised(shorter.turn_id, shorter.channel, kept, now))
            else:
                events.append(TurnDiscarded(shorter.turn_id, shorter.channel))
                dropped.add(shorter.turn_id)
    return events


def create_engine(separator: SeparatorConfig | None = None, **options) -> StreamingEngine | SeparatingEngine:
    """The engine (``options``: EngineConfig fields); with ``separator``, the two-channel one."""
    if separator is None:
        return StreamingEngine.create(**options)
    return SeparatingEngine.create(separator, **options)
