"""Streaming recognition of one channel's current turn with a commit policy.

Whisper is re-run on the turn's audio every ``step_seconds`` of new audio
(a short audio context: just the buffer plus padding). Words become final by
LocalAgreement-2 (Machacek et al., "Turning Whisper into Real-Time
Transcription System", 2023): once two consecutive hypotheses agree on them.
When the buffer grows past ``max_buffer_seconds`` it is cut after the last
committed word, and the committed text becomes the decoder prompt, so the
encoder cost stays bounded for long monologues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from transcriber.whisper.decoding import TimedWord, WhisperRecognizer

SAMPLE_RATE = 16000


@dataclass
class TransducerConfig:
    step_seconds: float = 1.0
    max_buffer_seconds: float = 15.0
    # a hypothesis that the model itself rates as probably not speech is dropped
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    prompt_tokens: int = 120


@dataclass
class StepCost:
    encoder_seconds: float = 0.0
    decoder_seconds: float = 0.0
    encoder_flops: float = 0.0
    decoder_flops: float = 0.0

    def add(self, other: StepCost) -> None:
        self.encoder_seconds += other.encoder_seconds
        self.decoder_seconds += other.decoder_seconds
        self.encoder_flops += other.encoder_flops
        self.decoder_flops += other.decoder_flops


@dataclass
class StepOutput:
    committed: list[TimedWord]  # times in stream seconds
    partial: list[TimedWord]
    cost: StepCost = field(default_factory=StepCost)


def _normalized(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class TurnTransducer:
    """Recognizes one turn: audio goes in as it arrives, committed words come out."""

    def __init__(self, recognizer: WhisperRecognizer, start: float, config: TransducerConfig, context: str = ""):
        self.recognizer = recognizer
        self.config = config
        self.buffer_start = start  # stream time of buffer[0]
        self.buffer = np.zeros(0, dtype=np.float32)
        self.unprocessed = 0.0  # seconds of audio since the last hypothesis
        self.committed: list[TimedWord] = []
        self.previous: list[TimedWord] = []  # the last hypothesis, words after the commit point
        self.context = context  # text before this turn, for the prompt
        self.committed_in_prompt = 0  # committed words whose audio was trimmed off the buffer

    @property
    def committed_end(self) -> float:
        return self.committed[-1].end if self.committed else self.buffer_start

    def append(self, samples: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, samples])
        self.unprocessed += len(samples) / SAMPLE_RATE

    def ready(self) -> bool:
        return self.unprocessed >= self.config.step_seconds

    def step(self) -> StepOutput:
        """Re-decode the buffer and commit what two consecutive hypotheses agree on."""
        hypothesis, cost = self._hypothesis()
        agreed = 0
        while (
            agreed < min(len(hypothesis), len(self.previous))
            and _normalized(hypothesis[agreed].text) == _normalized(self.previous[agreed].text)
        ):
            agreed += 1
        newly_committed = hypothesis[:agreed]
        self.committed.extend(newly_committed)
        self.previous = hypothesis[agreed:]
        self._trim_buffer()
        return StepOutput(newly_committed, list(self.previous), cost)

    def finish(self) -> StepOutput:
        """The turn is over: the last hypothesis over the whole buffer is final."""
        if len(self.buffer) == 0:
            return StepOutput([], [])
        hypothesis, cost = self._hypothesis()
        self.committed.extend(hypothesis)
        self.previous = []
        return StepOutput(hypothesis, [], cost)

    def _prompt(self) -> list[int]:
        """Text before the buffer: the turn's context and words trimmed off the buffer."""
        before_buffer = [w.text for w in self.committed[: self.committed_in_prompt]]
        text = " ".join([self.context, *before_buffer]).strip()
        if not text:
            return []
        return self.recognizer.tokenizer.encode(" " + text)[-self.config.prompt_tokens :]

    def _prefix(self) -> list[int]:
        """Committed words still inside the buffer: the decoder continues after them."""
        return [token for word in self.committed[self.committed_in_prompt :] for token in word.tokens]

    def _hypothesis(self) -> tuple[list[TimedWord], StepCost]:
        """Words of the buffer after the committed ones, in stream time."""
        self.unprocessed = 0.0
        result = self.recognizer.transcribe(self.buffer, prompt=self._prompt(), prefix=self._prefix())
        cost = StepCost(result.encoder_seconds, result.decoder_seconds, result.encoder_flops, result.decoder_flops)
        config = self.config
        if (
            result.no_speech_prob > config.no_speech_threshold and result.avg_logprob < config.logprob_threshold
        ) or result.compression_ratio > config.compression_ratio_threshold:
            return [], cost
        words = [
            TimedWord(w.text, w.start + self.buffer_start, w.end + self.buffer_start, w.probability, w.tokens)
            for w in result.words
        ]
        return self._without_repeated_commit(words), cost

    def _without_repeated_commit(self, words: list[TimedWord]) -> list[TimedWord]:
        """Drop a continuation that only says the committed words again.

        When the committed prefix already covers all the speech, Whisper tends to
        repeat it instead of ending; the repeat is squeezed into the last frames.
        """
        if not self.committed or not words:
            return words
        committed = [_normalized(w.text) for w in self.committed]
        for n in range(min(len(words), len(committed)), 0, -1):
            head = [_normalized(w.text) for w in words[:n]]
            if head == committed[-n:] and (n >= 2 or words[0].start < self.committed_end):
                return words[n:]
        return words

    def _trim_buffer(self) -> None:
        """Cut the buffer after the last committed word once it is long."""
        if len(self.buffer) / SAMPLE_RATE <= self.config.max_buffer_seconds or not self.committed:
            return
        cut_time = self.committed_end
        cut = int((cut_time - self.buffer_start) * SAMPLE_RATE)
        if cut <= 0:
            return
        self.buffer = self.buffer[cut:]
        self.buffer_start = cut_time
        self.committed_in_prompt = len(self.committed)
