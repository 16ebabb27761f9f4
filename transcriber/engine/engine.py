"""The streaming engine: audio blocks in, speaker-attributed events out.

One code path for live audio and files: blocks of 16 kHz mono float32 go to
``feed`` in order, as they arrive; ``finish`` flushes the stream. The stages:

* segmenter: webrtcvad opens a turn at speech onset and closes it after a
  pause; the turn's first ``speaker_decision_seconds`` decide its speaker
  (speaker embedding + online clustering), and ``<sot>`` is emitted then;
  ``<eot>`` when the pause closes it. Every ``change_hop`` seconds a window of
  the open turn is compared with its speaker; two unlike windows in a row split
  the turn (people answer each other without a pause). At the end of the stream
  each turn is first split in a pause where the voice before and after it
  differ (``pause_split``), then all turn embeddings are clustered again (the
  two sides of a live split never share a speaker; a speaker heard only briefly
  joins the closest) and changed labels are emitted; then each turn's words are
  checked against every speaker's voice in short windows, and runs of words in
  another known voice are split off into turns of their own (``TurnSplit``:
  interjections too short for the live check).
* separator (separator.py, optional): routes the stream into up to two
  channels where voices overlap, each channel an engine of this class; alone,
  this engine is channel 0. Events carry their channel.
* transducer: streaming Whisper with LocalAgreement-2 on the turn's audio.
  A second pass revises finished turns: turns less than ``stretch_gap`` apart
  form a stretch (up to ``revision_section_seconds`` of audio), decoded whole
  once it is complete, so that a sentence cut by a pause or a speaker change
  keeps its context; its words go back to their turns by aligning them with
  the streaming words (``share_among_turns``). A file skips this pass (unless
  the separator runs it): its last pass (speaker_pass.py) decodes each
  speaker's turns again once the whole file is heard.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from transcriber.engine.campplus import CamPlusPlusEncoder
from transcriber.engine.clustering import DEFAULT_THRESHOLD, OnlineSpeakerClustering, cosine
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
from transcriber.engine.quiet import quietest_moment
from transcriber.engine.resegment import (
    WORD_START_SLACK_SECONDS,
    Loudness,
    Piece,
    VoiceWindows,
    pause_near,
    pauses,
    said_before,
    speaker_centroids,
    split_in_pause,
    voice_change_in_pause,
    voice_pieces,
    windows_around,
    word_voices,
)
from transcriber.engine.speaker_encoder import SpeakerEncoder
from transcriber.engine.transducer import (
    SecondPass,
    StepCost,
    TransducerConfig,
    TurnTransducer,
    word_matcher,
)
from transcriber.engine.vad import SpeechEnd, SpeechStart, StreamingVad
from transcriber.transcript.model import SPEECH_EDGE_SECONDS, Word
from transcriber.whisper.arbitrators import GatedAudioEncoder, arbitrators_for_budget, default_arbitrators
from transcriber.whisper.decoding import TimedWord, WhisperRecognizer
from transcriber.whisper.loading import DEFAULT_MODEL
from transcriber.whisper.recognizer import load_recognizer

SAMPLE_RATE = 16000
# turns this close were one VAD turn, split at a change of voice
TOUCHING_SECONDS = 0.1


@dataclass(frozen=True)
class SpeakerModelSettings:
    """The settings that depend on the speaker encoder.

    change_threshold: the live check's bar (a 1.5 s window against its turn's speaker).
    voice_window, voice_hop: the windows each finished turn is embedded in, for the
        pause split, the one-voice check and the resegmentation.
    one_voice_consistency: a turn whose windows are on average at least this alike
        to their mean holds one voice (see voice_changes_separate).
    """

    change_threshold: float
    voice_window: float
    voice_hop: float
    one_voice_consistency: float


SPEAKER_MODELS = {
    # CAM++ scores a 1.5 s window of the turn's own voice 0.80-0.87 against its
    # centroid and two like voices 0.65-0.80 (calibrated scale): at GE2E's 0.63 the
    # live check missed them. It tells voices apart in 1 s windows, where GE2E needs
    # 1.5 s: 0S turns of 1.1-1.5 s ("Chapter sixteen.") get windows of their own;
    # shorter windows are noisier, so one voice scores lower on consistency (24 0S
    # meetings: one-voice turns 0.83 and up; turns split live that were one speaker
    # 0.83-0.85, which 0.87 kept apart). Windows every 0.5 s instead of 0.25 s halve
    # their cost at the same cpWER on 36 simulated meetings (0S file RTF 0.354 ->
    # 0.298), but a second voice of 1.4 s after a 0.05 s pause then has no window of its
    # own and stays in the first one's turn (tests/test_engine.py): not kept. Since the
    # windows are computed in one pass (CamPlusPlusEncoder.embed_windows), neighbours share context and
    # consistency reads higher: over the reference turns of 24 simulated meetings (one
    # voice) and 226 joins of two speakers' turns, 0.82 apart maps to 0.836 in one pass
    # (the same joins merged); 0.84 keeps every one-voice turn and merges 52 % of the
    # joins instead of 62 %
    "campplus": SpeakerModelSettings(
        change_threshold=0.70, voice_window=1.0, voice_hop=0.25, one_voice_consistency=0.84
    ),
    "ge2e": SpeakerModelSettings(
        change_threshold=DEFAULT_THRESHOLD - 0.05, voice_window=1.5, voice_hop=0.5, one_voice_consistency=0.87
    ),
}


@dataclass
class EngineConfig:
    model: str = DEFAULT_MODEL
    int8: bool = True
    # target fraction of the full encoder's FLOPs (see whisper/arbitrators.py); None:
    # the model's shipped default operating point, or the full encoder if it has none
    compute_budget: float | None = None
    threads: int = 2
    # a file at least twice this long is cut in pauses into one piece per thread,
    # recognised at once, one thread each (pieces.py): two simulated meetings of 4.4
    # and 6.3 min (benchmark --long-meetings 2), 2 cores, RTF 0.260 -> 0.191, DER
    # 4.0 / 4.3 -> 4.5 / 4.4 %. Shorter pieces cost accuracy, as each piece learns its
    # speakers afresh: 24 + 24 simulated 0S / 0L meetings of 35-104 s not tuned on, in
    # two pieces from 30 s (15 here), errors 428 -> 440 (15 better, 19 worse), RTF
    # 0.263 -> 0.198 (README, "What moved")
    min_piece_seconds: float = 60.0
    speakers: int | None = None  # a known number of speakers; None: found automatically
    # "campplus": CAM++ (campplus.py), with its cosines mapped onto GE2E's scale by
    # campplus_score_floor (see CamPlusPlusEncoder); or "ge2e": resemblyzer's d-vectors
    # (speaker_encoder.py), which the thresholds below were first tuned on. What
    # differs between the two is in SPEAKER_MODELS. CAM++ is better on meetings not
    # tuned on and on the pyannote sample (README, "Speaker encoder")
    speaker_model: str = "campplus"
    campplus_score_floor: float = 0.47
    max_speakers: int = 8
    speaker_threshold: float = DEFAULT_THRESHOLD
    speaker_decision_seconds: float = 1.5
    refine_speakers: bool = True
    # whole turns are longer than the pieces the live threshold was tuned on, and
    # longer audio raises every pair's similarity: the refinement asks for more
    refine_threshold: float = 0.75
    # a speaker heard for less than this in all (short turns: noisy embeddings) joins
    # the most similar speaker in the refinement if they are at least this alike
    min_speaker_seconds: float = 3.0
    small_speaker_threshold: float = 0.5
    # the turns on either side of a detected change of voice keep different speakers,
    # unless as whole turns they are at least refine_threshold alike and each holds one
    # voice: its windows at least one_voice_consistency alike to their mean on average.
    # The live check compares 1.5 s windows with an early centroid and can fire seconds
    # late, inside the next speaker's sentence, whose end then stayed a speaker of its
    # own. Consistency over 48 simulated 0S meetings and the sessions: turns of one voice
    # 0.88-0.99, of two 0.83-0.88. 24 0S meetings not tuned on: speakers counted right
    # 18 -> 20 of 24, cpWER 16.3 -> 15.7 %; without the one-voice condition 22 of 24 and
    # 13.7 %, but the pyannote sample's two mixed turns became one speaker (DER 31 -> 51 %)
    voice_changes_separate: bool = True
    one_voice_consistency: float | None = None  # None: the speaker model's (SPEAKER_MODELS)
    # a finished turn none of whose words got at least this probability from Whisper
    # was noise (a quiet room's "So", again and again, scored 0.01-0.09)
    min_turn_word_probability: float = 0.1
    vad_aggressiveness: int = 2
    min_silence: float = 0.4
    # a turn is shown from this much before its first voiced frame to this much after
    # its last, where a pause is on that side; its audio keeps the VAD's wider padding
    # for the recognizer. Against the padded edges (0.2 s and webrtcvad's onset
    # window), DER: 12 simulated 0L meetings 5.7 -> 1.6 % (24 others 6.3 -> 1.9 %),
    # pyannote sample 21.3 -> 19.7 %, AMI excerpts 44.5 -> 45.4 % (their annotated
    # turns are wider than far-field voice); at 0 s, 0L 1.3 %, AMI 46.1 %
    voice_edge_seconds: float = 0.1
    # a finished turn is shown no further than this beyond its first and last words:
    # webrtcvad takes far-off talk and room noise for voice, and a turn of two words
    # ran 12 s (AMI excerpts). The same edge as the RTTM export's speech spans
    # (Turn.speech_spans). Measured in the README ("What moved")
    words_edge_seconds: float | None = SPEECH_EDGE_SECONDS
    # turns closer than this share their second pass (see module docstring)
    stretch_gap: float = 1.0
    # fewer words than this per second of a turn: the turn is decoded again on its own
    min_words_per_second: float = 0.25
    # speaker change inside a turn (no pause between two speakers): windows of the
    # open turn are compared with its speaker; two dissimilar windows in a row split it
    change_window: float = 1.5
    # a window every change_hop seconds: short turns (0S: 1-3 s) need a fine hop, and
    # embeddings need long windows (1 s windows also blur the whole-turn embedding)
    change_hop: float = 1.0
    # None: the speaker model's (SPEAKER_MODELS)
    change_threshold: float | None = None
    change_strikes: int = 2
    # end-of-stream resegmentation (see resegment.py): each closed turn is embedded in
    # windows of voice_window seconds every voice_hop seconds; a word goes to another
    # speaker when that one is resegment_margin more similar than the turn's own, and
    # only runs of at least min_split_words such words become turns (1: a single word
    # too, as the next speaker's first word left at the end of a turn; 12 simulated 0S
    # meetings: cpWER 11.7 -> 11.3 % against 2; 0L and the pyannote sample unchanged)
    resegment: bool = True
    voice_window: float | None = None  # None: the speaker model's (SPEAKER_MODELS)
    voice_hop: float | None = None
    resegment_margin: float = 0.05
    min_split_words: int = 1
    # a split moves by up to split_search_words words to the longest pause, counted
    # in frames pause_below_speech_db quieter than the turn's speech
    split_search_words: int = 2
    pause_below_speech_db: float = 20.0
    # before the refinement, a finished turn is split in a pause of at least
    # pause_split_seconds where the voice before and the voice after are less alike
    # than pause_split_threshold (mean windows of each side, cosine similarity).
    # Seen on 0S meetings: two voices 0.42-0.64, one voice 0.62-0.93 across a pause.
    # 12 simulated 0S meetings: cpWER 14.1 -> 11.7 %, speakers counted right 83 -> 92 %
    # (0.5: 11.8 %; pauses from 0.15 s: the same); 0L, pyannote, AMI unchanged.
    # Pauses from 0.1 s (0S people answer after 0.1-0.5 s): with the boundary moves
    # below, 9.6 -> 8.8 %, speakers counted right 92 -> 100 % (seed 1011: "A strong
    # white wall | kindly Indians" was a fifth speaker); 0L and the sessions unchanged
    pause_split: bool = True
    pause_split_seconds: float = 0.1
    pause_split_threshold: float = 0.55
    # sides of at least pause_split_long_windows windows each (about 3.5 s of speech)
    # are two voices below pause_split_long_threshold: one voice scores 0.9 and more
    # over such lengths, two similar voices 0.72 (seed 1013: 0S cpWER 42 %, a 9 s
    # utterance under the speaker of the 3 s before it)
    pause_split_long_threshold: float | None = 0.8
    pause_split_long_windows: int = 5
    # ...and below pause_split_near_threshold between the pause_split_near_seconds of
    # speech right before and right after it, where both hold pause_split_near_windows
    # windows: two voices that take turns within one turn (A B A B with short pauses)
    # make everything before a pause and everything after it alike. Near sides of two
    # voices scored 0.41-0.64 over 24 simulated 0S meetings, of one voice mostly 0.68
    # and more (once 0.54)
    pause_split_near_seconds: float = 2.5
    pause_split_near_threshold: float | None = 0.65
    pause_split_near_windows: int = 3
    # after the refinement, the change between two touching turns of different
    # speakers (a live split: placed after the words already committed, so a word or
    # two late, hardly ever early) moves to the nearest pause (at least
    # boundary_pause_seconds) up to boundary_seconds_before it or _after it
    move_boundaries: bool = True
    boundary_seconds_before: float = 1.0
    boundary_seconds_after: float = 0.1
    boundary_pause_seconds: float = 0.1
    context_words: int = 40  # words of the previous turn given to the decoder as prompt
    # the second pass's prompt is the last words of the same speaker, not of whoever
    # spoke last: their own names and topic, where the turn before may be another
    # person's "yeah". Measured (12 simulated 0L meetings): cpWER 10.0 -> 9.5 %; the
    # pyannote sample and AMI excerpts unchanged
    speaker_context: bool = True
    cost_interval: float = 1.0  # seconds of audio per cost sample
    transducer: TransducerConfig = field(default_factory=TransducerConfig)

    def speaker_settings(self) -> SpeakerModelSettings:
        """The speaker model's settings, with the ones this config sets instead."""
        settings = SPEAKER_MODELS.get(self.speaker_model)
        if settings is None:
            raise ValueError(f"unknown speaker model {self.speaker_model!r} ({' or '.join(SPEAKER_MODELS)})")
        names = (f.name for f in fields(SpeakerModelSettings))
        chosen = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return replace(settings, **chosen)


@dataclass
class _Turn:
    turn_id: int
    start: float
    transducer: TurnTransducer
    end: float | None = None  # set when the turn closes
    # where the voice begins and ends, when a pause is on that side: the turn is shown
    # there, without the padding its audio has for the recognizer
    voice_start: float | None = None
    voice_end: float | None = None
    speaker: str | None = None
    held: list[Event] = field(default_factory=list)  # events waiting for the speaker decision
    last_partial: str = ""
    checked_until: float = 0.0  # speaker-change windows are checked up to here
    strikes: list[float] = field(default_factory=list)  # starts of windows unlike the speaker
    # embeddings already computed for stretches of the turn: (start, end, embedding)
    windows: list[tuple[float, float, np.ndarray]] = field(default_factory=list)


@dataclass
class _Stretch:
    """Closed turns close together in time, waiting for their second pass."""

    turns: list[_Turn]
    start: float
    end: float


@dataclass
class _ClosedTurn:
    turn_id: int
    speaker: str
    embedding: np.ndarray
    duration: float
    words: list[TimedWord]  # as the transcript has them: streaming, then second-pass words
    voice: VoiceWindows | None  # for the resegmentation
    start: float

    @property
    def end(self) -> float:
        return self.start + self.duration


def load_speaker_encoder(config: EngineConfig) -> SpeakerEncoder | CamPlusPlusEncoder:
    if config.speaker_model == "campplus":
        return CamPlusPlusEncoder(score_floor=config.campplus_score_floor)
    if config.speaker_model == "ge2e":
        return SpeakerEncoder()
    raise ValueError(f"unknown speaker model {config.speaker_model!r} (ge2e or campplus)")


class StreamingEngine:
    """One channel's segmenter and transducer. Alone it is the whole engine (every turn
    on channel 0); under the separator (separator.py) two of them share the speakers
    (``clustering``) and the turn numbers (``turn_ids``)."""

    def __init__(
        self,
        recognizer: WhisperRecognizer,
        speaker_encoder: SpeakerEncoder | CamPlusPlusEncoder,
        config: EngineConfig,
        channel: int = 0,
        clustering: OnlineSpeakerClustering | None = None,
        turn_ids: Iterator[int] | None = None,
    ):
        self.recognizer = recognizer
        self.speaker_encoder = speaker_encoder
        self.config = config
        self.channel = channel
        self.vad = StreamingVad(config.vad_aggressiveness, config.min_silence)
        self.clustering = clustering or OnlineSpeakerClustering(
            threshold=config.speaker_threshold, max_speakers=config.max_speakers, fixed_speakers=config.speakers
        )
        self.turn_ids = turn_ids or itertools.count(1)
        self.samples_seen = 0
        # recent audio, so that a turn can start a little before the VAD noticed it
        self.history = np.zeros(0, dtype=np.float32)
        self.history_start = 0  # sample index of history[0]
        self.turn: _Turn | None = None
        self.second_pass = SecondPass(recognizer, config.transducer)
        self.stretch: _Stretch | None = None
        self.turn_synced_until = 0  # sample index up to which the open turn has its audio
        self.closed_turns: dict[int, _ClosedTurn] = {}  # by turn id, in the order they closed
        self.voice_changes: list[tuple[int, int]] = []  # (turn, next turn) split at a change of voice
        self.previous_text: list[str] = []
        self.speaker_text: dict[str, list[str]] = {}  # each speaker's last words, for the second pass
        self.stage_seconds: dict[str, float] = {}
        self.stage_flops: dict[str, float] = {}
        self.cost_from = 0.0

    @classmethod
    def create(cls, model: str = DEFAULT_MODEL, speakers: int | None = None, **options) -> StreamingEngine:
        config = EngineConfig(model=model, speakers=speakers, **options)
        torch.set_num_threads(config.threads)
        recognizer = load_recognizer(config.model, int8=config.int8)
        engine = cls(recognizer, load_speaker_encoder(config), config)
        engine.set_compute_budget(config.compute_budget)
        return engine

    def set_compute_budget(self, budget: float | None) -> None:
        """Switch the encoder to the operating point for ``budget`` (None: the model's
        default). Takes effect from the next decoded window; every engine sharing the
        loaded model switches with it. Raises NoOperatingPoint for a budget below 1
        when no arbitrators were trained for the model."""
        arbitrators = (
            default_arbitrators(self.config.model)
            if budget is None
            else arbitrators_for_budget(self.config.model, budget)
        )
        self.recognizer.set_arbitrators(arbitrators)
        self.config.compute_budget = budget

    def fresh(self, **changes: Any) -> StreamingEngine:
        """A new engine for another stream that shares these loaded models; ``changes``
        replace fields of its config (e.g. ``transducer=TransducerConfig.for_files()``)."""
        return StreamingEngine(self.recognizer, self.speaker_encoder, replace(copy.deepcopy(self.config), **changes))

    @property
    def time(self) -> float:
        return self.samples_seen / SAMPLE_RATE

    def start_at(self, seconds: float) -> None:
        """Begin the stream ``seconds`` into the audio, a whole number of VAD frames
        (30 ms): the stream is a piece of a file (pieces.py), and its events give
        times from the start of the file. Only before the first ``feed``."""
        self.vad.start_at(seconds)
        self.samples_seen = self.history_start = self.turn_synced_until = round(seconds * SAMPLE_RATE)
        self.cost_from = self.time

    # -- public API ------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> list[Event]:
        """Take the next block of 16 kHz mono float32 audio; return the events it caused."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += len(samples)
        self.history = np.concatenate([self.history, samples])
        events: list[Event] = []
        started = time.perf_counter()
        vad_events = self.vad.feed(samples)
        self._charge("vad", time.perf_counter() - started, 0.0)
        for vad_event in vad_events:
            if isinstance(vad_event, SpeechStart):
                events += self._open_turn(vad_event.time, vad_event.voice)
            else:
                events += self._close_turn(vad_event.time, vad_event.voice)
        events += self._advance_open_turn(self.samples_seen)
        if self._stretch_complete():
            events += self._revise_stretch(speech_after=self._touches_stretch(self.turn))
        self._forget_history()
        events += self._cost_sample(force=False)
        return events

    def finish(self) -> list[Event]:
        """End of stream: close the open turn and refine speaker labels."""
        events = self.end_stream()
        events += settle_speakers([self])
        return events + self._cost_sample(force=True)

    def end_stream(self) -> list[Event]:
        """Close the open turn and revise the last stretch: no audio comes after this."""
        events: list[Event] = []
        for vad_event in self.vad.finish():
            if isinstance(vad_event, SpeechEnd):
                events += self._close_turn(vad_event.time, vad_event.voice)
        if self.turn is not None:
            events += self._close_turn(self.time)
        return events + self._revise_stretch()

    # -- turns ---------------------------------------------------------------------------------------
    def _open_turn(self, start: float, voice: float | None = None) -> list[Event]:
        events: list[Event] = []
        if self.turn is not None:  # the VAD never overlaps regions, but be safe
            events += self._close_turn(start)
        context = " ".join(self.previous_text[-self.config.context_words :])
        transducer = TurnTransducer(self.recognizer, start, self.config.transducer, context=context)
        self.turn = _Turn(next(self.turn_ids), start, transducer)
        self.turn_synced_until = max(self.history_start, int(start * SAMPLE_RATE))
        transducer.buffer_start = self.turn_synced_until / SAMPLE_RATE
        self.turn.start = transducer.buffer_start
        if voice is not None:
            self.turn.voice_start = max(self.turn.start, voice - self.config.voice_edge_seconds)
        return events

    def _advance_open_turn(self, until_sample: int) -> list[Event]:
        """Give the open turn its audio up to ``until_sample``; run due recognition steps."""
        turn = self.turn
        if turn is None or until_sample <= self.turn_synced_until:
            return []
        offset = self.turn_synced_until - self.history_start
        turn.transducer.append(self.history[offset : until_sample - self.history_start])
        self.turn_synced_until = until_sample
        events: list[Event] = []
        if turn.speaker is None and self._turn_seconds(turn) >= self.config.speaker_decision_seconds:
            events += self._decide_speaker(turn)
        if turn.speaker is not None:
            change_at = self._speaker_change(turn)
            if change_at is not None:
                return events + self._split_turn(change_at)
        if turn.transducer.ready():
            output = turn.transducer.step()
            self._charge_step(output.cost)
            events += self._route(turn, self._word_events(turn, output.committed, output.partial))
        return events

    def _close_turn(self, end: float, voice: float | None = None) -> list[Event]:
        """``<eot>`` at stream time ``end``: the pause that the VAD found (the voice
        ended at ``voice``)."""
        turn = self.turn
        if turn is None:
            return []
        events = self._advance_open_turn(max(self.turn_synced_until, int(end * SAMPLE_RATE)))
        if self.turn is not turn:  # a speaker change split it on the way
            return events + self._close_turn(end, voice)
        return events + self._end_turn(turn, end, voice)

    def _end_turn(self, turn: _Turn, end: float, voice: float | None = None) -> list[Event]:
        end = max(turn.start, min(end, self.turn_synced_until / SAMPLE_RATE))
        turn.voice_end = None if voice is None else min(end, voice + self.config.voice_edge_seconds)
        events: list[Event] = []
        if turn.speaker is None:
            events += self._decide_speaker(turn, until=end)
        output = turn.transducer.finish(until=end)
        self._charge_step(output.cost)
        events += self._word_events(turn, output.committed, [])
        turn.end = end
        if not self.config.transducer.revise_turns:
            events += self._decode_if_skipped(turn)
        shown = _around_words(_shown_span(turn), turn.transducer.committed, self.config.words_edge_seconds)
        events.append(TurnEnded(turn.turn_id, self.channel, turn.speaker or "S?", *shown))
        closed = _ClosedTurn(
            turn.turn_id,
            turn.speaker or "S?",
            self._turn_embedding(turn, end),
            end - turn.start,
            list(turn.transducer.committed),
            self._voice_windows(turn.start, end) if self.config.resegment else None,
            turn.start,
        )
        self.closed_turns[turn.turn_id] = closed
        if self.config.transducer.revise_turns:
            events += self._join_stretch(turn)
        else:
            events += self._discard_if_empty(turn)
        self.previous_text = (self.previous_text + [w.text for w in turn.transducer.committed])[-200:]
        self.turn = None
        return events

    # -- second pass ---------------------------------------------------------------------------------
    def _join_stretch(self, turn: _Turn) -> list[Event]:
        """Add a closed turn to the stretch waiting for its second pass, or revise that
        stretch first if the turn is too far from it or would make it too long."""
        assert turn.end is not None
        events: list[Event] = []
        stretch = self.stretch
        if stretch is not None and (
            turn.start - stretch.end > self.config.stretch_gap
            or turn.end - stretch.start > self.config.transducer.revision_section_seconds
        ):
            events += self._revise_stretch(speech_after=self._touches_stretch(turn))
        if self.stretch is None:
            self.stretch = _Stretch([], turn.start, turn.end)
        self.stretch.turns.append(turn)
        self.stretch.end = turn.end
        return events

    def _touches_stretch(self, turn: _Turn | None) -> bool:
        """``turn`` follows the waiting stretch within the gap that joins turns (it only
        stays out of it because the stretch would be too long)."""
        stretch = self.stretch
        return turn is not None and stretch is not None and turn.start - stretch.end <= self.config.stretch_gap

    def _stretch_complete(self) -> bool:
        """No later turn can join: a pause longer than the gap, or the open turn would
        make the stretch too long."""
        stretch = self.stretch
        if stretch is None:
            return False
        if self.turn is None:
            return self.time - stretch.end > self.config.stretch_gap
        return (
            self.turn.start - stretch.end > self.config.stretch_gap
            or self.time - stretch.start > self.config.transducer.revision_section_seconds
        )

    def _revise_stretch(self, speech_after: bool = False) -> list[Event]:
        """Decode the stretch whole and give each of its turns its share of the words.
        ``speech_after``: the next turn touches it, and is heard with it as context."""
        stretch, self.stretch = self.stretch, None
        if stretch is None:
            return []
        start = max(stretch.start, self.history_start / SAMPLE_RATE)
        audio = self._audio_span(start, stretch.end)
        if len(audio) < SAMPLE_RATE // 10:
            return [e for turn in stretch.turns for e in self._discard_if_empty(turn)]
        seconds = self.config.transducer.revision_lookahead_seconds
        lookahead = self._audio_span(stretch.end, stretch.end + seconds) if speech_after else None
        streamed = [w for turn in stretch.turns for w in turn.transducer.committed]
        owners = [index for index, turn in enumerate(stretch.turns) for _ in turn.transducer.committed]
        context = stretch.turns[0].transducer.context
        if self.config.speaker_context:
            said_before = self.speaker_text.get(stretch.turns[0].speaker or "", [])
            context = " ".join(said_before[-self.config.context_words :])
        revised, cost = self.second_pass.revise(audio, start, streamed, context, lookahead)
        self._charge_step(cost)
        spans = [(turn.start, turn.end or turn.start) for turn in stretch.turns]
        shares = share_among_turns(revised, streamed, owners, spans)
        events: list[Event] = []
        for turn, words in zip(stretch.turns, shares, strict=True):
            events += self._replace_words(turn, _within(self._unless_skipped(turn, words), *_shown_span(turn)))
            if turn.turn_id in self.closed_turns:
                self.closed_turns[turn.turn_id].words = list(turn.transducer.committed)
            said = self.speaker_text.setdefault(turn.speaker or "", [])
            said[:] = (said + [w.text for w in turn.transducer.committed])[-200:]
            events += self._discard_if_empty(turn)
        return events

    def _discard_if_empty(self, turn: _Turn) -> list[Event]:
        """A finished turn without words, or with only words Whisper hardly believed,
        was noise: it leaves the transcript and the speaker refinement (its embedding
        would be a voice of its own)."""
        threshold = self.config.min_turn_word_probability
        if any(word.probability >= threshold for word in turn.transducer.committed):
            return []
        self.closed_turns.pop(turn.turn_id, None)
        return [TurnDiscarded(turn.turn_id, self.channel)]

    def _decode_if_skipped(self, turn: _Turn) -> list[Event]:
        """Without the stretch pass (files), a turn the streaming pass skipped gets
        ``_unless_skipped`` as it closes: otherwise it would leave as noise, unheard by
        the last pass (a 6 s sentence whose streaming decodes all failed their guards
        left only "the", at probability 0.001)."""
        words = self._unless_skipped(turn, turn.transducer.committed)
        return self._replace_words(turn, _within(words, *_shown_span(turn)))

    def _replace_words(self, turn: _Turn, words: list[TimedWord]) -> list[Event]:
        """``words`` become the turn's own; a ``TurnRevised`` where their text differs."""
        if [w.text for w in words] == [w.text for w in turn.transducer.committed]:
            return []
        turn.transducer.committed = words
        return [TurnRevised(turn.turn_id, self.channel, self._words(words), self.time)]

    def _unless_skipped(self, turn: _Turn, words: list[TimedWord]) -> list[TimedWord]:
        """A turn of several seconds with hardly a word in it (people say two or three
        words a second) was probably skipped by both passes: decode it on its own."""
        assert turn.end is not None
        seconds = turn.end - max(turn.start, self.history_start / SAMPLE_RATE)
        if seconds < 3.0 or len(words) >= self.config.min_words_per_second * seconds:
            return words
        start = turn.end - seconds
        # without the earlier text as prompt: a prompt ending in "Hello." can make
        # Whisper write "Hello." for a whole turn and stop
        alone, cost = self.second_pass.revise(self._audio_span(start, turn.end), start, list(words), context="")
        self._charge_step(cost)
        return alone if len(alone) > len(words) else words

    def _speaker_change(self, turn: _Turn) -> float | None:
        """Where another voice took over the open turn, once that is clear; else None."""
        window, hop = self.config.change_window, self.config.change_hop
        now = self.turn_synced_until / SAMPLE_RATE
        if turn.checked_until < turn.start + self.config.speaker_decision_seconds:
            turn.checked_until = turn.start + self.config.speaker_decision_seconds
        while now - turn.checked_until >= hop:
            last_checked, turn.checked_until = turn.checked_until, turn.checked_until + hop
            window_start = max(turn.start, turn.checked_until - window)
            embedding = self._embed_span(window_start, turn.checked_until)
            turn.windows.append((window_start, turn.checked_until, embedding))
            similarities = self.clustering.similarities(embedding)
            own_index = int(turn.speaker[1:]) - 1 if turn.speaker and turn.speaker[1:].isdigit() else -1
            own = similarities[own_index] if 0 <= own_index < len(similarities) else 1.0
            if own >= self.config.speaker_settings().change_threshold:
                turn.strikes = []
                continue
            turn.strikes.append(last_checked)  # the voice was still the turn's up to about here
            if len(turn.strikes) >= self.config.change_strikes:
                return self._quietest_point(turn.strikes[0] - window / 2, turn.strikes[0] + window / 2)
        return None

    def _split_turn(self, at: float) -> list[Event]:
        """End the open turn at ``at`` and open the next one there, for the new voice."""
        turn = self.turn
        assert turn is not None
        at = max(at, turn.transducer.committed_end, turn.start + 0.5)  # final words stay where they are
        synced = self.turn_synced_until
        events = self._end_turn(turn, at)
        events += self._open_turn(at)
        assert self.turn is not None
        self.voice_changes.append((turn.turn_id, self.turn.turn_id))
        return events + self._advance_open_turn(synced)

    def _quietest_point(self, start: float, end: float) -> float:
        """A likely word boundary inside [start, end]."""
        return quietest_moment(self.history, self.history_start / SAMPLE_RATE, start, end)

    def _turn_seconds(self, turn: _Turn) -> float:
        return self.turn_synced_until / SAMPLE_RATE - turn.start

    def _audio_span(self, start: float, end: float) -> np.ndarray:
        first = max(0, int(start * SAMPLE_RATE) - self.history_start)
        return self.history[first : max(first, int(end * SAMPLE_RATE) - self.history_start)]

    def _turn_embedding(self, turn: _Turn, end: float) -> np.ndarray:
        """The whole turn's embedding, reusing the windows embedded on the way
        (the speaker decision and change checks) instead of embedding it again."""
        windows = [(s, e, emb) for s, e, emb in turn.windows if e <= end + 0.05]
        covered = max((e for _, e, _ in windows), default=turn.start)
        if end - covered >= 0.75 or not windows:
            windows.append((covered, end, self._embed_span(covered, end)))
        weights = np.array([max(e - s, 1e-3) for s, e, _ in windows])
        mean = np.average(np.stack([emb for _, _, emb in windows]), axis=0, weights=weights)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def _embed_span(self, start: float, end: float) -> np.ndarray:
        started = time.perf_counter()
        audio = self._audio_span(start, end)
        embedding = self.speaker_encoder.embed(audio)
        seconds = len(audio) / SAMPLE_RATE
        self._charge("embedding", time.perf_counter() - started, self.speaker_encoder.flops_per_second * seconds)
        return embedding

    def _decide_speaker(self, turn: _Turn, until: float | None = None) -> list[Event]:
        end = self.turn_synced_until / SAMPLE_RATE if until is None else until
        embedding = self._embed_span(turn.start, end)
        turn.windows.append((turn.start, end, embedding))
        turn.speaker = self.clustering.assign(embedding, weight=end - turn.start)
        events: list[Event] = [TurnStarted(turn.turn_id, self.channel, turn.speaker, _shown_span(turn)[0])]
        events += turn.held
        turn.held = []
        return events

    def _route(self, turn: _Turn, events: list[Event]) -> list[Event]:
        """Hold a turn's word events until its ``<sot>`` (and speaker) is out."""
        if turn.speaker is None:
            turn.held += events
            return []
        return events

    def _word_events(self, turn: _Turn, committed: list[TimedWord], partial: list[TimedWord]) -> list[Event]:
        events: list[Event] = []
        now = self.time
        if committed:
            # the turn's audio is padded before its voice: no word is shown before it
            shown = _within(committed, _shown_span(turn)[0], float("inf"))
            events.append(WordsCommitted(turn.turn_id, self.channel, self._words(shown), now))
        partial_text = " ".join(w.text for w in partial)
        if partial_text != turn.last_partial:
            turn.last_partial = partial_text
            events.append(PartialText(turn.turn_id, self.channel, partial_text, now))
        return events

    @staticmethod
    def _words(words: list[TimedWord]) -> tuple[Word, ...]:
        return tuple(
            Word(w.text, round(w.start, 3), round(max(w.end, w.start), 3), round(w.probability, 3)) for w in words
        )

    def _voice_windows(self, start: float, end: float) -> VoiceWindows | None:
        """Window embeddings of a closing turn, in one batch while its audio is kept."""
        audio = self._audio_span(start, end)
        if len(audio) < SAMPLE_RATE // 2:
            return None
        started = time.perf_counter()
        settings = self.config.speaker_settings()
        times, embeddings = self.speaker_encoder.embed_windows(audio, settings.voice_window, settings.voice_hop)
        seconds = len(audio) / SAMPLE_RATE
        flops = self.speaker_encoder.windows_flops_per_second(settings.voice_window, settings.voice_hop) * seconds
        self._charge("embedding", time.perf_counter() - started, flops)
        audio_start = end - seconds  # the span may start after ``start`` if history was dropped
        loudness = Loudness.of(audio, audio_start, SAMPLE_RATE)
        return VoiceWindows(times + audio_start, embeddings, loudness)

    def _split_at_voice_change(self, closed: _ClosedTurn) -> list[Event]:
        """Split a finished turn in a pause where the voice before it is unlike the voice
        after it (two people with a short pause between them: too short for the VAD,
        too early in the turn for the live check), then each side again. The sides
        then go into the speaker refinement as turns of their own."""
        config = self.config
        voice = closed.voice
        if voice is None or voice.loudness is None or len(closed.words) < 2:
            return []
        spans = pauses(voice.loudness, config.pause_below_speech_db, config.pause_split_seconds)
        half_window = config.speaker_settings().voice_window / 2
        pause = voice_change_in_pause(
            voice,
            spans,
            half_window,
            config.pause_split_threshold,
            config.pause_split_long_threshold,
            config.pause_split_long_windows,
            config.pause_split_near_seconds,
            config.pause_split_near_threshold,
            config.pause_split_near_windows,
        )
        if pause is None:
            return []
        at = (pause[0] + pause[1]) / 2
        keep = said_before(closed.words, pause)
        if keep == 0 or keep == len(closed.words):
            return []
        before, after = windows_around(voice, pause, half_window)
        assert before is not None and after is not None
        moved = _ClosedTurn(
            next(self.turn_ids), closed.speaker, after.embedding(), closed.end - at, closed.words[keep:], after, at
        )
        closed.embedding, closed.duration, closed.words, closed.voice = (
            before.embedding(),
            at - closed.start,
            closed.words[:keep],
            before,
        )
        order = list(self.closed_turns.values())
        order.insert(order.index(closed) + 1, moved)
        self.closed_turns = {t.turn_id: t for t in order}
        # a change of voice at the turn's end now borders the moved part, not the first
        self.voice_changes = [(moved.turn_id if a == closed.turn_id else a, b) for a, b in self.voice_changes]
        # the pause split heard two voices: the refinement keeps them apart as it keeps
        # the two sides of a change found live (a short side would otherwise join its
        # nearest speaker, which may be the other side)
        self.voice_changes.append((closed.turn_id, moved.turn_id))
        events: list[Event] = [
            TurnSplit(closed.turn_id, self.channel, keep, round(at, 3), moved.turn_id, moved.speaker)
        ]
        return events + self._split_at_voice_change(closed) + self._split_at_voice_change(moved)

    def _move_boundaries_to_pauses(self) -> list[Event]:
        """Put each change between touching turns of two speakers in the pause between
        their voices, and give the words on the wrong side of it to the other turn."""
        config = self.config
        events: list[Event] = []
        turns = sorted(self.closed_turns.values(), key=lambda t: t.start)
        for first, second in itertools.pairwise(turns):
            if first.speaker == second.speaker or second.start - first.end > TOUCHING_SECONDS:
                continue
            if first.voice is None or first.voice.loudness is None:
                continue
            if second.voice is None or second.voice.loudness is None:
                continue
            loudness = first.voice.loudness.followed_by(second.voice.loudness)
            spans = pauses(loudness, config.pause_below_speech_db, config.boundary_pause_seconds)
            pause = pause_near(spans, first.end, config.boundary_seconds_before, config.boundary_seconds_after)
            if pause is None:
                continue
            at = (pause[0] + pause[1]) / 2
            words = first.words + second.words
            # a start within the slack of the pause: the turn the word was in decides
            keep = said_before(first.words, pause) + said_before(second.words, pause, -WORD_START_SLACK_SECONDS)
            if keep == 0 or keep == len(words) or abs(at - first.end) < 0.01:
                continue
            end = second.end
            first.words, second.words = words[:keep], words[keep:]
            first.duration = at - first.start
            second.start, second.duration = at, end - at
            events.append(TurnBoundaryMoved(first.turn_id, second.turn_id, self.channel, round(at, 3), keep))
        return events

    def _resegment_turn(self, closed: _ClosedTurn, centroids: dict[str, np.ndarray]) -> list[Event]:
        """Split a finished turn where its words are in another known speaker's voice."""
        if closed.voice is None or len(closed.words) < 2:
            return []
        voices = word_voices(closed.words, closed.voice, closed.speaker, centroids, self.config.resegment_margin)
        pieces = voice_pieces(closed.words, voices, closed.speaker, self.config.min_split_words)
        pieces = self._splits_in_pauses(pieces, closed.voice.loudness)
        events: list[Event] = []
        if pieces[0].speaker != closed.speaker:
            events.append(SpeakerRelabelled(closed.turn_id, self.channel, closed.speaker, pieces[0].speaker))
            closed.speaker = pieces[0].speaker
        turn_id = closed.turn_id
        last_at = closed.start
        for before, piece in zip(pieces, pieces[1:], strict=False):
            new_turn_id = next(self.turn_ids)
            # word times need not be in order: each piece starts after the one before
            at = last_at = min(max(_boundary(before.words[-1], piece.words[0]), last_at), closed.end)
            events.append(TurnSplit(turn_id, self.channel, len(before.words), round(at, 3), new_turn_id, piece.speaker))
            turn_id = new_turn_id
        return events

    def _splits_in_pauses(self, pieces: list[Piece], loudness: Loudness | None) -> list[Piece]:
        words = [w for piece in pieces for w in piece.words]
        cuts = list(itertools.accumulate(len(piece.words) for piece in pieces))[:-1]
        config = self.config
        moved = []
        for number, cut in enumerate(cuts):
            low = moved[-1] + 1 if moved else 1
            high = cuts[number + 1] - 1 if number + 1 < len(cuts) else len(words) - 1
            moved.append(
                split_in_pause(
                    words, cut, loudness, config.split_search_words, config.pause_below_speech_db, (low, high)
                )
            )
        bounds = [0, *moved, len(words)]
        return [Piece(p.speaker, words[a:b]) for p, a, b in zip(pieces, bounds[:-1], bounds[1:], strict=True)]

    def _forget_history(self) -> None:
        """Keep the open turn's audio and a couple of seconds before now; drop the rest."""
        keep_from = self.samples_seen - 2 * SAMPLE_RATE
        if self.stretch is not None:
            keep_from = min(keep_from, int(self.stretch.start * SAMPLE_RATE))
        if self.turn is not None:
            # a very long turn keeps only its last minute: enough for its speaker embedding
            turn_from = max(int(self.turn.start * SAMPLE_RATE), self.samples_seen - 60 * SAMPLE_RATE)
            keep_from = min(keep_from, turn_from)
        drop = keep_from - self.history_start
        if drop > SAMPLE_RATE:
            self.history = self.history[drop:]
            self.history_start = keep_from

    # -- cost accounting ------------------------------------------------------------------------------
    def account(self, cost: StepCost, at: float) -> list[Event]:
        """Charge recognition done after the stream's end (speaker_pass.py): a cost
        sample at audio time ``at`` (the file's end), over no audio."""
        self._charge_step(cost)
        return [self._sample(at, at)]

    def _charge(self, stage: str, seconds: float, flops: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        self.stage_flops[stage] = self.stage_flops.get(stage, 0.0) + flops

    def _charge_step(self, cost: StepCost) -> None:
        self._charge("encoder", cost.encoder_seconds, cost.encoder_flops)
        self._charge("decoder", cost.decoder_seconds, cost.decoder_flops)

    def _encoder_blocks_run(self) -> tuple[tuple[int, int], tuple[tuple[float, float], ...]]:
        """Encoder sub-block evaluations (per frame) run and offered since the last
        sample, as the encoder counted them, and the fraction run per layer (attention,
        MLP) where the encoder is gated."""
        encoder = self.recognizer.model.encoder
        counts = encoder.counter.take()
        layers: tuple[tuple[float, float], ...] = ()
        if isinstance(encoder, GatedAudioEncoder):
            layers = tuple(encoder.gates.per_layer())
            encoder.gates.clear()
        return counts, layers

    def _cost_sample(self, force: bool) -> list[Event]:
        if not force and self.time - self.cost_from < self.config.cost_interval:
            return []
        if self.time <= self.cost_from and not self.stage_seconds:
            return []
        sample = self._sample(self.cost_from, self.time)
        self.cost_from = self.time
        return [sample]

    def _sample(self, audio_start: float, audio_end: float) -> CostSample:
        """What was charged since the last sample, for the audio from start to end."""
        (run, offered), layers_run = self._encoder_blocks_run()
        sample = CostSample(
            channel=self.channel,
            audio_start=audio_start,
            audio_end=audio_end,
            stage_seconds=dict(self.stage_seconds),
            stage_flops=dict(self.stage_flops),
            encoder_blocks_run=run / offered if offered else 1.0,
            encoder_layers_run=layers_run,
            encoder_sub_blocks=(run, offered),
        )
        self.stage_seconds, self.stage_flops = {}, {}
        return sample


def settle_speakers(channels: Sequence[StreamingEngine]) -> list[Event]:
    """After the stream: cluster all finished turns of all channels again, then split
    turns where the words are in another known voice (see the module docstring)."""
    config = channels[0].config
    events: list[Event] = []
    if config.pause_split:
        for engine in channels:
            for closed in list(engine.closed_turns.values()):
                events += engine._split_at_voice_change(closed)
    if config.refine_speakers:
        events += _refine_speakers(channels)
    if config.move_boundaries:
        for engine in channels:
            events += engine._move_boundaries_to_pauses()
    if config.resegment:
        started = time.perf_counter()
        turns = [(engine, closed) for engine in channels for closed in engine.closed_turns.values()]
        centroids = speaker_centroids([t.voice for _, t in turns], [t.speaker for _, t in turns])
        for engine, closed in turns:
            events += engine._resegment_turn(closed, centroids)
        channels[0]._charge("clustering", time.perf_counter() - started, 0.0)
    return events


def _refine_speakers(channels: Sequence[StreamingEngine]) -> list[Event]:
    turns = [(engine, closed) for engine in channels for closed in engine.closed_turns.values()]
    if len(turns) < 2:
        return []
    index = {(engine.channel, closed.turn_id): i for i, (engine, closed) in enumerate(turns)}
    config = channels[0].config
    cannot_link = [
        (index[(engine.channel, a)], index[(engine.channel, b)])
        for engine in channels
        for a, b in engine.voice_changes
        if (engine.channel, a) in index
        and (engine.channel, b) in index
        and not _one_speaker(engine.closed_turns[a], engine.closed_turns[b], config)
    ]
    started = time.perf_counter()
    labels = channels[0].clustering.refine(
        [t.embedding for _, t in turns],
        [t.duration for _, t in turns],
        [t.speaker for _, t in turns],
        threshold=config.refine_threshold,
        min_cluster_weight=config.min_speaker_seconds,
        small_cluster_threshold=config.small_speaker_threshold,
        cannot_link=cannot_link if config.voice_changes_separate else (),
    )
    labels = _without_gaps(labels)
    channels[0]._charge("clustering", time.perf_counter() - started, 0.0)
    events: list[Event] = []
    for (engine, closed), label in zip(turns, labels, strict=True):
        if label != closed.speaker:
            events.append(SpeakerRelabelled(closed.turn_id, engine.channel, closed.speaker, label))
            closed.speaker = label
    return events


def _one_speaker(first: _ClosedTurn, second: _ClosedTurn, config: EngineConfig) -> bool:
    """Whether the two sides of a voice change detected live are one speaker after all."""
    if cosine(first.embedding, second.embedding) < config.refine_threshold:
        return False
    # the mean of two voices says little about either: the change stands
    return all(
        turn.voice is None or turn.voice.consistency() >= config.speaker_settings().one_voice_consistency
        for turn in (first, second)
    )


def _shown_span(turn: _Turn) -> tuple[float, float]:
    """Where a turn is shown: where its voice begins and ends (its audio is padded for
    the recognizer), or at the change of voice that began or ended it."""
    start = turn.start if turn.voice_start is None else turn.voice_start
    end = turn.end if turn.voice_end is None else turn.voice_end
    if end is None:  # still open
        return start, start
    return min(start, end), end


def _around_words(span: tuple[float, float], words: list[TimedWord], edge: float | None) -> tuple[float, float]:
    """``span`` narrowed to ``edge`` seconds before the first word and after the last
    (unchanged without words, or when ``edge`` is None)."""
    start, end = span
    if not words or edge is None:
        return span
    first, last = min(w.start for w in words) - edge, max(w.end for w in words) + edge
    start, end = max(start, min(first, end)), min(end, max(last, start))
    return start, max(start, end)


def _within(words: list[TimedWord], start: float, end: float) -> list[TimedWord]:
    """Word times clamped to their turn: a word the streaming pass did not have keeps
    the second pass's timing, which can drift past the pause that ended the turn."""
    return [
        replace(w, start=min(max(w.start, start), end), end=min(max(w.end, start), end))
        if not start <= w.start <= w.end <= end
        else w
        for w in words
    ]


def _boundary(before: TimedWord, after: TimedWord) -> float:
    """Where one word ends and the next begins (their times may overlap a little)."""
    if before.end <= after.start:
        return (before.end + after.start) / 2
    return after.start


def _without_gaps(labels: list[str]) -> list[str]:
    """Speaker ids numbered S1..Sk: when the refinement merged S1 away, the rest move
    down in their order ({S2, S3} -> {S1, S2}); ids already without gaps stay."""

    def number(label: str) -> int:
        return int(label[1:]) if label[1:].isdigit() else 10**6

    order = sorted(set(labels), key=lambda label: (number(label), label))
    renamed = {label: f"S{index}" for index, label in enumerate(order, start=1)}
    return [renamed[label] for label in labels]


def share_among_turns(
    revised: list[TimedWord], streamed: list[TimedWord], owners: list[int], spans: list[tuple[float, float]]
) -> list[list[TimedWord]]:
    """Which turn of a stretch each second-pass word belongs to.

    Word timings from a long window drift by a few tenths of a second, enough to push
    a turn's last word into the next turn. So the second-pass words are aligned by
    text with the streaming words, whose turns are known (``owners``: a turn index
    per streaming word), and take their turn. They keep their own times, which come
    from a decode of the whole stretch (the streaming pass times a word it first
    heard at the end of a short window loosely: "Chapter" over 1.8 s, from before the
    pause that preceded it), unless those fall outside their turn. Words the streaming
    pass did not have go by time: to the turn whose span (``spans``), halfway
    into the gaps, holds their middle, if both aligned neighbours do not agree.
    """
    turn_of: list[int | None] = [None] * len(revised)
    timed = list(revised)
    for block in word_matcher(streamed, revised).get_matching_blocks():
        for k in range(block.size):
            old, new = streamed[block.a + k], revised[block.b + k]
            owner = turn_of[block.b + k] = owners[block.a + k]
            if not spans[owner][0] <= new.start <= new.end <= spans[owner][1]:
                timed[block.b + k] = replace(new, start=old.start, end=old.end)
    boundaries = [(spans[i][1] + spans[i + 1][0]) / 2 for i in range(len(spans) - 1)]
    for j, word in enumerate(revised):
        if turn_of[j] is not None:
            continue
        before = next((turn_of[i] for i in range(j - 1, -1, -1) if turn_of[i] is not None), None)
        after = next((turn_of[i] for i in range(j + 1, len(revised)) if turn_of[i] is not None), None)
        if before is not None and before == after:
            turn_of[j] = before
        else:
            by_time = bisect.bisect_right(boundaries, (word.start + word.end) / 2)
            low = before if before is not None else 0
            high = after if after is not None else len(spans) - 1
            turn_of[j] = min(max(by_time, low), high)
    shares: list[list[TimedWord]] = [[] for _ in spans]
    for word, owner in zip(timed, turn_of, strict=True):
        shares[owner if owner is not None else 0].append(word)
    return shares
