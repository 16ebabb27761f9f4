"""Streaming recognition of one channel's current turn with a commit policy.

Whisper is re-run on the turn's audio every ``step_seconds`` of new audio
(a short audio context: just the buffer plus padding). Words become final by
LocalAgreement-2 (Machacek et al., "Turning Whisper into Real-Time
Transcription System", 2023): once two consecutive hypotheses agree on them.
When the buffer grows past ``max_buffer_seconds`` it is cut after the last
committed word, and the committed text becomes the decoder prompt, so the
encoder cost stays bounded for long monologues.

``SecondPass`` decodes finished speech again in one window (the engine gives
it stretches of turns), as two-pass streaming recognisers do (Sainath et al.,
"Two-Pass End-to-End Speech Recognition", 2019): the streaming words show up
early, the second pass gives them the accuracy of a whole-utterance decode.
Where the second pass fails its guards, the streaming words stay.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field, replace

import numpy as np

from transcriber.engine.quiet import quietest_moment
from transcriber.whisper.decoding import TimedWord, WhisperRecognizer, WindowResult, shorten_long_words

SAMPLE_RATE = 16000
# a word that starts this close to a cut in the audio is probably clipped by it
CLIPPED_WORD_SECONDS = 0.3
# a word no longer than this has no audio under it (alignment steps are 0.02 s)
NO_TIME_SECONDS = 0.02
# the most audio one second-pass decode is given: Whisper's 30 s window less the
# recognizer's padding
MAX_SECTION_SECONDS = 29.0


@dataclass
class TransducerConfig:
    step_seconds: float = 1.0
    max_buffer_seconds: float = 10.0
    sentence_trim_seconds: float = 4.0
    commit_margin_seconds: float = 0.4
    trim_backoff_seconds: float = 0.2
    force_commit_seconds: float = 20.0
    # a hypothesis that the model itself rates as probably not speech is dropped
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    # ...and so is one of at most this many words above no_speech_threshold, however
    # confident: Whisper's "Thank you" / "you" on noise (AMI far-field excerpts, the
    # telephone sample's first seconds: no-speech 0.66-0.94 at log-probability -0.8)
    short_hypothesis_words: int = 2
    compression_ratio_threshold: float = 2.4
    prompt_tokens: int = 120
    # second pass over finished stretches of turns, in sections of at most this length
    # (Whisper's window is 30 s; the recognizer pads 1 s)
    revise_turns: bool = True
    revision_section_seconds: float = 25.0
    # a second-pass section with fewer words than this share of the streaming
    # words skipped speech: the streaming words stay
    revision_min_word_ratio: float = 0.6
    # ...or where, within revision_gap_seconds, the streaming pass heard at least
    # revision_gap_words words and the second pass at most one (Whisper jumped over a
    # sentence and stretched one word over it)
    revision_gap_seconds: float = 3.0
    revision_gap_words: int = 6
    # a decode that shares fewer than this share of its words with the streaming words
    # (checked from revision_min_shared_words streaming words on) is done again
    # without its prompt
    revision_min_shared_ratio: float = 0.5
    revision_min_shared_words: int = 8
    # a run of at least this many second-pass words squeezed into no time, which the
    # streaming pass did not hear, was written by the prompt, not heard ("... from the
    # house." then "the place to be built in the house, so that" with 0 s per word, over
    # "So that"): such words are dropped. 48 simulated 0S meetings: 2 such runs, both
    # words that nobody said
    invented_run_words: int = 3
    # the second pass encodes Whisper's whole window (the audio, then silence), as
    # Whisper was trained: a short turn alone in a short window is decoded worse.
    # Measured (12 simulated 0L meetings): cpWER 10.0 -> 8.9 %, file RTF +0.02
    revision_window_seconds: float = 30.0
    # ...but in a long section Whisper sometimes falls into its lowercase, unpunctuated
    # style there ("Nellie a year went by the face who ..." for "Nearly a year went
    # by. The fates, who ..."), and hears worse in it: a decode of at least this many
    # words without a punctuation mark is done again in a window of its own length,
    # and the more confident of the two is kept. (Retrying every decode below a mean
    # log probability of -0.4 instead, 12 + 12 simulated meetings: 0S cpWER 10.0 ->
    # 9.6 %, but 0L 8.5 -> 8.7 %: short turns swap one slip for another)
    unpunctuated_retry_words: int = 12
    # a second-pass word that lasts longer than this (to the next word's start) is
    # decoded again alone: Whisper may have skipped speech there
    long_word_seconds: float = 1.5
    long_word_new_words: int = 2
    # a stretch cut off from the speech that follows it (the section limit reached in
    # the middle of a conversation) is decoded with up to this much of that speech
    # after it, and the words that start there dropped: the stretch's last sentence
    # may go on there, and Whisper hears a word cut by the end of the audio badly ("A
    # single moment served | to convince" -> "A single mama served me."). 24 + 24
    # simulated 0S meetings (tuned on / not): cpWER 9.3 -> 8.6 % and 8.7 -> 7.7 %;
    # dropping words by their middle instead of their start (a word across the cut is
    # lost) 8.9 and 7.9 %; 2 s, by middle, 8.8 and 8.1 %; 2 s of the speech before
    # the stretch as well, by middle, 10.1 and 8.6 %; 0L unchanged
    revision_lookahead_seconds: float = 3.0
    # files only: once the speakers are settled, each speaker's turns are decoded again
    # one after another (engine/speaker_pass.py). 24 + 24 simulated meetings not tuned
    # on (seeds 1024-1047, README)
    speaker_pass: bool = False

    @classmethod
    def for_files(cls) -> TransducerConfig:
        """A file has nobody waiting for its words: hypotheses come less often and words
        settle longer before they are final. The last pass (``speaker_pass``) decodes
        every turn again once the speakers are settled; the streaming words of a file
        mostly place words in turns and stand in where that pass fails its guards.

        Measured on 24 + 24 simulated 0S/0L meetings not tuned on
        (benchmarks/compare_configs.py, seeds 1024-1047):
        - no second pass over stretches in between (``revise_turns``): cpWER 6.69 ->
          6.78 % (16 meetings better, 19 worse, sign test p = 0.74), speakers counted
          right 45 -> 47 of 48, RTF 0.264 -> 0.203;
        - a hypothesis every 3 s instead of 2 s, not kept: 428 -> 431 errors (8
          better, 13 worse, p = 0.38), RTF 0.229 -> 0.209; the pyannote sample's
          ORC-WER 23.0 -> 26.4 % ("Neither did I." became "I needed to die.").
        (Before the last pass, on 6 + 6 meetings and 60 utterances, steps of 1.5, 2 and
        3 s gave the same accuracy; 2 s costs about 10 % less compute than 1.5 s.)"""
        return cls(step_seconds=2.0, commit_margin_seconds=1.0, revise_turns=False, speaker_pass=True)


@dataclass
class StepCost:
    encoder_seconds: float = 0.0
    decoder_seconds: float = 0.0
    encoder_flops: float = 0.0
    decoder_flops: float = 0.0

    @classmethod
    def of(cls, result: WindowResult) -> StepCost:
        return cls(result.encoder_seconds, result.decoder_seconds, result.encoder_flops, result.decoder_flops)

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


def normalized_word(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def word_matcher(a: list[TimedWord], b: list[TimedWord]) -> difflib.SequenceMatcher:
    """Aligns two word sequences by their normalized text (case and punctuation aside)."""
    return difflib.SequenceMatcher(
        a=[normalized_word(w.text) for w in a], b=[normalized_word(w.text) for w in b], autojunk=False
    )


def _repeated_head(committed_tail: list[str], hypothesis: list[str], single_word_ok: bool) -> int:
    """How many leading hypothesis words repeat the end of the committed words:
    the longest n such that hypothesis[:n] equals the last n committed words.
    One word alone counts only when ``single_word_ok`` (people do repeat words)."""
    for n in range(min(len(committed_tail), len(hypothesis)), 0, -1):
        if hypothesis[:n] == committed_tail[-n:] and (n >= 2 or single_word_ok):
            return n
    return 0


def _prompt_tokens(recognizer: WhisperRecognizer, config: TransducerConfig, text: str) -> list[int]:
    if not text or config.prompt_tokens <= 0:
        return []
    return recognizer.tokenizer.encode(" " + text)[-config.prompt_tokens :]


def _rejected(result: WindowResult, config: TransducerConfig) -> bool:
    """Probably not speech, by the model's own account, or a repetition loop."""
    unlikely_speech = result.no_speech_prob > config.no_speech_threshold and (
        result.avg_logprob < config.logprob_threshold or len(result.words) <= config.short_hypothesis_words
    )
    return unlikely_speech or result.compression_ratio > config.compression_ratio_threshold


def _in_stream_time(result: WindowResult, start: float, heard: float) -> list[TimedWord]:
    """Window times to stream times; alignment may reach into the padding after
    the audio: clamp to what was heard."""
    return [
        TimedWord(w.text, min(w.start + start, heard), min(w.end + start, heard), w.probability, w.tokens)
        for w in result.words
        if any(c.isalnum() for c in w.text)  # a lone "." is no word (Whisper writes it for noise)
    ]


def _unpunctuated(text: str, min_words: int) -> bool:
    return len(text.split()) >= min_words and not any(mark in text for mark in ".,?!;:")


def without_padding_echo(
    words: list[TimedWord], heard: float, tail_seconds: float = 0.3, squeezed_word_seconds: float = 0.1
) -> list[TimedWord]:
    """Drop a closing repeat that Whisper wrote into the silence padded after the audio:
    the last k >= 2 words say again words said earlier in the same hypothesis, and the
    alignment squeezes all of them into the last ``tail_seconds`` of what was heard, or
    into less than ``squeezed_word_seconds`` a word wherever they start ("... secret
    movement. It was he who had given immense impetus to that secret movement." with
    the repeat's 12 words in 0.36 s, 0.6 s before the end of a 0L turn)."""
    texts = [normalized_word(w.text) for w in words]
    for k in range(len(words) // 2, 1, -1):
        tail = texts[-k:]
        in_padding = words[-k].start >= heard - tail_seconds
        squeezed = words[-1].end - words[-k].start < k * squeezed_word_seconds
        if not (in_padding or squeezed):
            continue
        if any(texts[i : i + k] == tail for i in range(len(words) - 2 * k + 1)):
            return words[:-k]
    return words


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
        self.draft: list[int] = []  # the last decode's text tokens: the next one mostly says them again

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
        if hypothesis is None:  # rejected by a guard: wait for the next one
            self._bound_buffer()
            return StepOutput([], list(self.previous), cost)
        # words at the very end of the window are guesses from cut-off audio
        settled_before = self.buffer_start + len(self.buffer) / SAMPLE_RATE - self.config.commit_margin_seconds
        agreed = 0
        while (
            agreed < min(len(hypothesis), len(self.previous))
            and normalized_word(hypothesis[agreed].text) == normalized_word(self.previous[agreed].text)
            and hypothesis[agreed].end <= settled_before
        ):
            agreed += 1
        if len(self.buffer) / SAMPLE_RATE > self.config.force_commit_seconds:
            # hypotheses that never agree (noise, babble) would grow the window past
            # Whisper's 30 s: take the current one as final and move on
            agreed = len(hypothesis)
        newly_committed = hypothesis[:agreed]
        self.committed.extend(newly_committed)
        self.previous = hypothesis[agreed:]
        self._trim_buffer()
        self._bound_buffer()
        return StepOutput(newly_committed, list(self.previous), cost)

    def _bound_buffer(self) -> None:
        """Nothing could be committed and the window is full: recognition skips ahead.
        (The recording itself keeps every sample; only this window lets go.)"""
        if len(self.buffer) / SAMPLE_RATE <= self.config.force_commit_seconds:
            return
        keep = int(self.config.step_seconds * SAMPLE_RATE)
        self.buffer_start += (len(self.buffer) - keep) / SAMPLE_RATE
        self.buffer = self.buffer[-keep:]
        self.previous = []
        self.committed_in_prompt = len(self.committed)

    def finish(self, until: float | None = None) -> StepOutput:
        """The turn is over (at stream time ``until``, default: all audio given):
        the last hypothesis over the buffer is final."""
        if until is not None:
            keep = max(0, int(round((until - self.buffer_start) * SAMPLE_RATE)))
            self.buffer = self.buffer[:keep]
        if len(self.buffer) < SAMPLE_RATE // 10:
            return StepOutput([], [])
        hypothesis, cost = self._hypothesis()
        if hypothesis is None:  # the last hypothesis that passed the guards, up to the end
            end = self.buffer_start + len(self.buffer) / SAMPLE_RATE
            hypothesis = [w for w in self.previous if (w.start + w.end) / 2 < end]
        self.committed.extend(hypothesis)
        self.previous = []
        return StepOutput(hypothesis, [], cost)

    def _prompt(self) -> list[int]:
        """Text before the buffer: the turn's context and words trimmed off the buffer."""
        before_buffer = [w.text for w in self.committed[: self.committed_in_prompt]]
        return _prompt_tokens(self.recognizer, self.config, " ".join([self.context, *before_buffer]).strip())

    def _hypothesis(self) -> tuple[list[TimedWord] | None, StepCost]:
        """Words of the buffer after the committed ones, in stream time.

        The whole buffer is decoded afresh rather than forced to continue the
        committed words (tried: one wrong commit then derails the rest of the turn,
        and it did worse on the benchmark). Committed words still in the buffer are
        skipped by aligning them with the hypothesis text. None means a guard
        rejected the hypothesis.
        """
        self.unprocessed = 0.0
        prompt = self._prompt()
        result = self.recognizer.transcribe(self.buffer, prompt=prompt, draft=self.draft)
        cost = StepCost.of(result)
        if prompt and not result.tokens and len(self.buffer) >= SAMPLE_RATE:
            # the prompt can make Whisper believe the speech is over (it ends on a
            # full stop): a turn's audio with nothing in it gets a second try without
            result = self.recognizer.transcribe(self.buffer, draft=self.draft)
            cost.add(StepCost.of(result))
        self.draft = result.tokens or self.draft
        if _rejected(result, self.config):
            return None, cost
        heard = self.buffer_start + len(self.buffer) / SAMPLE_RATE
        words = without_padding_echo(_in_stream_time(result, self.buffer_start, heard), heard)
        return self._after_committed(words), cost

    def _after_committed(self, words: list[TimedWord]) -> list[TimedWord]:
        """Skip the hypothesis words that say again what is committed.

        Committed words still in the buffer are aligned with the head of the
        hypothesis by text (word timings of a small model are too loose for a cut
        by time); unmatched committed words at the end count as substitutions.
        Words trimmed off the buffer may still be partly audible at its start (the
        cut time is only as good as the word timings): a hypothesis that opens by
        repeating the last of them drops the repeat.
        """
        in_buffer = [normalized_word(w.text) for w in self.committed[self.committed_in_prompt :]]
        if not in_buffer:
            trimmed = [normalized_word(w.text) for w in self.committed[: self.committed_in_prompt][-15:]]
            # the buffer is cut a little before the last committed word ends
            single_word_ok = bool(words) and words[0].start < self.buffer_start + 0.4
            return words[_repeated_head(trimmed, [normalized_word(w.text) for w in words], single_word_ok) :]
        head = [normalized_word(w.text) for w in words[: len(in_buffer) + 5]]
        matcher = difflib.SequenceMatcher(a=in_buffer, b=head, autojunk=False)
        blocks = [block for block in matcher.get_matching_blocks() if block.size > 0]
        if not blocks:
            return [w for w in words if (w.start + w.end) / 2 > self.committed_end - 0.1]
        last = blocks[-1]
        position = last.b + last.size + (len(in_buffer) - (last.a + last.size))
        return words[position:]

    def _trim_buffer(self) -> None:
        """Cut the buffer after the last committed word once it is long, or earlier at
        a committed sentence end: shorter windows cost less to re-decode."""
        if not self.committed or len(self.committed) == self.committed_in_prompt:
            return
        seconds = len(self.buffer) / SAMPLE_RATE
        sentence_end = self.committed[-1].text.endswith((".", "?", "!"))
        if seconds <= self.config.max_buffer_seconds and not (
            sentence_end and seconds > self.config.sentence_trim_seconds
        ):
            return
        # word end times from attention alignment are loose: cut a little early, since a
        # repeated word is recognised and dropped, while a clipped one is lost
        cut_time = max(self.buffer_start, self.committed_end - self.config.trim_backoff_seconds)
        cut = int((cut_time - self.buffer_start) * SAMPLE_RATE)
        if cut <= 0:
            return
        self.buffer = self.buffer[cut:]
        self.buffer_start = cut_time
        self.committed_in_prompt = len(self.committed)


class SecondPass:
    """Decodes a finished stretch of speech (one or more turns) in as few sections as
    Whisper's window allows, and keeps the streaming words where it fails."""

    def __init__(self, recognizer: WhisperRecognizer, config: TransducerConfig):
        self.recognizer = recognizer
        self.config = config

    def revise(
        self,
        audio: np.ndarray,
        start: float,
        streamed: list[TimedWord],
        context: str,
        lookahead: np.ndarray | None = None,
    ) -> tuple[list[TimedWord], StepCost]:
        """The words of ``audio`` (it starts at stream time ``start``); ``streamed`` are the
        words the streaming pass committed for it, ``context`` the text said before;
        ``lookahead``: the speech just after it, heard with the last section (up to
        ``revision_lookahead_seconds`` of it); the words that start there are dropped.

        Each section's words replace the streaming words whose middles fall inside
        it; a section whose decode fails a guard, or that finds much less than the
        streaming pass found, keeps the streaming words. Streaming words outside the
        audio (a turn longer than the audio kept) stay as they are.
        """
        cost = StepCost()
        end = start + len(audio) / SAMPLE_RATE
        revised = [w for w in streamed if (w.start + w.end) / 2 < start]
        sections = self._sections(audio, start, end)
        for number, (section_start, section_end) in enumerate(sections):
            first = int(round((section_start - start) * SAMPLE_RATE))
            last = int(round((section_end - start) * SAMPLE_RATE))
            heard = [w for w in streamed if section_start <= (w.start + w.end) / 2 < section_end]
            prompt = " ".join([context, *(w.text for w in revised)]).strip()
            section = audio[first:last]
            wide = self._with_lookahead(section, lookahead if number == len(sections) - 1 else None)
            draft = [token for word in heard for token in word.tokens]
            words, section_cost = self._decode_section(wide, section_start, prompt, section_end, draft)
            cost.add(section_cost)
            skipped = self._skipped_speech(words, heard)
            if prompt and (skipped or self._astray(words or [], heard)):
                # the prompt can lead Whisper to jump ahead, or off: once more without it
                again, section_cost = self._decode_section(wide, section_start, "", section_end, draft)
                cost.add(section_cost)
                if skipped or not self._astray(again or [], heard):
                    words = again
                    skipped = self._skipped_speech(words, heard)
            kept = heard if skipped else self._without_invented(words or [], heard)
            kept, fill_cost = self._fill_long_words(kept, section, section_start, heard)
            cost.add(fill_cost)
            revised.extend(shorten_long_words(kept, section, section_start))
        revised.extend(w for w in streamed if (w.start + w.end) / 2 >= end)
        return revised, cost

    def _fill_long_words(
        self, words: list[TimedWord], audio: np.ndarray, start: float, streamed: list[TimedWord]
    ) -> tuple[list[TimedWord], StepCost]:
        """Whisper sometimes jumps over a stretch of speech, or stops before the end of
        it; the alignment then gives the word before the jump all of it (a 3 s
        "Hello."). Such a word, up to the next word or the end of the audio, is decoded
        again alone, without a prompt, from the start of the word before it (word
        starts are loose: a decode from the long word's own start often clips it), and
        gives way to what that finds if it found more (``_gap_words``); if that decode
        stops early too, to what the streaming pass heard there (``_streamed_gap_words``)."""
        cost = StepCost()
        filled: list[TimedWord] = []
        end = start + len(audio) / SAMPLE_RATE
        for number, word in enumerate(words):
            until = words[number + 1].start if number + 1 < len(words) else end
            if until - word.start <= self.config.long_word_seconds:
                filled.append(word)
                continue
            decode_from = words[number - 1].start if number > 0 else word.start
            first = max(0, int(round((decode_from - start) * SAMPLE_RATE)))
            last = int(round((until - start) * SAMPLE_RATE))
            found, found_cost = self._decode_section(audio[first:last], decode_from, "")
            cost.add(found_cost)
            if number + 1 < len(words):
                # words squeezed into the end are the next word, clipped by the cut and
                # misheard ("They were" -> "they are"): the gap is what comes before it
                found = [w for w in found or [] if w.start < until - CLIPPED_WORD_SECONDS]
            gap_words = self._gap_words(word, found or []) or self._streamed_gap_words(word, streamed, until)
            filled.extend(gap_words or [word])
        return filled, cost

    def _streamed_gap_words(self, word: TimedWord, streamed: list[TimedWord], until: float) -> list[TimedWord] | None:
        """The long word and the streaming words after it up to ``until``, if the streaming
        pass heard the word (within a second of it) and at least ``long_word_new_words``
        words after it there: its short windows went on where Whisper's whole-stretch
        decodes stopped ("The contrary is true." over 2.3 s, where the streaming pass
        heard "... true. Chapter 35")."""
        said = normalized_word(word.text)
        same = [k for k, w in enumerate(streamed) if normalized_word(w.text) == said and abs(w.start - word.start) < 1]
        if not same:
            return None
        after = [w for w in streamed[same[0] + 1 :] if (w.start + w.end) / 2 < until]
        if len(after) < self.config.long_word_new_words:
            return None
        return [replace(word, end=min(word.end, after[0].start)), *after]

    def _gap_words(self, word: TimedWord, found: list[TimedWord]) -> list[TimedWord] | None:
        """The found words from the long word on, if the decode has the long word among
        its first three words and goes on with at least ``long_word_new_words`` other
        words after it: a decode without it misheard it, and one that only repeats it
        ("Consequently, consequently, ...") looped on a pause."""
        said = normalized_word(word.text)
        texts = [normalized_word(w.text) for w in found]
        if said not in texts[:3]:
            return None
        at = texts.index(said)
        if len(set(texts[at + 1 :]) - {said}) < self.config.long_word_new_words:
            return None
        # the decode may stretch the word over the gap as well: it ends where the next begins
        return [replace(found[at], end=min(found[at].end, found[at + 1].start)), *found[at + 1 :]]

    def _skipped_speech(self, words: list[TimedWord] | None, streamed: list[TimedWord]) -> bool:
        """A second-pass section is not trusted when a guard rejected it, or when it
        has far fewer words than the streaming pass heard in the same audio (Whisper
        sometimes skips a sentence; the streaming pass saw it in short windows), or
        when it jumped over a sentence and stretched one word over it: at most one of
        its words where the streaming pass heard ``revision_gap_words`` within
        ``revision_gap_seconds``."""
        if words is None or len(words) < self.config.revision_min_word_ratio * len(streamed):
            return True
        return self._jumped_over(words, streamed)

    def _jumped_over(self, words: list[TimedWord], streamed: list[TimedWord]) -> bool:
        span, many = self.config.revision_gap_seconds, self.config.revision_gap_words
        if many <= 0:
            return False
        middles = np.array([(w.start + w.end) / 2 for w in words])
        for number in range(len(streamed) - many + 1):
            start = streamed[number].start
            # words squeezed into no time (a loop at the end of the audio) were not heard
            if not 0.15 * many <= streamed[number + many - 1].end - start <= span:
                continue
            if np.count_nonzero((middles >= start) & (middles < start + span)) <= 1:
                return True
        return False

    def _without_invented(self, words: list[TimedWord], streamed: list[TimedWord]) -> list[TimedWord]:
        """``words`` less the runs of ``invented_run_words`` or more that take no time and
        that the streaming pass did not hear: Whisper's alignment finds no audio under
        words its prompt led it to write."""
        if self.config.invented_run_words <= 0:
            return words
        blocks = word_matcher(streamed, words).get_matching_blocks()
        heard = {k for block in blocks for k in range(block.b, block.b + block.size)}
        kept: list[TimedWord] = []
        for invented, run in itertools.groupby(
            enumerate(words), key=lambda item: item[1].end - item[1].start <= NO_TIME_SECONDS and item[0] not in heard
        ):
            run_words = [word for _, word in run]
            if not (invented and len(run_words) >= self.config.invented_run_words):
                kept.extend(run_words)
        return kept

    def _astray(self, words: list[TimedWord], streamed: list[TimedWord]) -> bool:
        """A decode that shares too few words with the streaming pass: a revision
        changes some words, a decode led off by its prompt ("He had to take his steps
        to the ground, and he was a little bit more concerned about ..." over 15 s of
        other speech) hardly any. In hard audio (far-field AMI) the two passes can
        disagree as much with the second pass right: it is only decoded again."""
        if len(streamed) < self.config.revision_min_shared_words:
            return False
        shared = sum(block.size for block in word_matcher(streamed, words).get_matching_blocks())
        return shared < self.config.revision_min_shared_ratio * max(len(streamed), len(words))

    def _sections(self, audio: np.ndarray, start: float, end: float) -> list[tuple[float, float]]:
        """Cut [start, end] into pieces no longer than ``revision_section_seconds``,
        each cut at the quietest moment of the last 5 s before the limit."""
        limit = self.config.revision_section_seconds
        sections = []
        section_start = start
        while end - section_start > limit:
            cut = quietest_moment(audio, start, section_start + limit - 5.0, section_start + limit)
            cut = cut if cut > section_start else section_start + limit
            sections.append((section_start, cut))
            section_start = cut
        sections.append((section_start, end))
        return sections

    def _with_lookahead(self, section: np.ndarray, lookahead: np.ndarray | None) -> np.ndarray:
        """The section and the start of ``lookahead`` after it, as much as
        ``revision_lookahead_seconds`` and Whisper's window allow."""
        if lookahead is None:
            return section
        room = max(0, int(MAX_SECTION_SECONDS * SAMPLE_RATE) - len(section))
        length = min(int(self.config.revision_lookahead_seconds * SAMPLE_RATE), room, len(lookahead))
        return np.concatenate([section, lookahead[:length]]).astype(np.float32)

    def _decode_section(
        self,
        audio: np.ndarray,
        start: float,
        context: str,
        keep_until: float | None = None,
        draft: list[int] | None = None,
    ) -> tuple[list[TimedWord] | None, StepCost]:
        """The words of ``audio`` (from stream time ``start``) that start before
        ``keep_until``: the audio after it is heard for context only. ``draft``: the
        tokens of the streaming words, which speed decoding up where they are right."""
        prompt = _prompt_tokens(self.recognizer, self.config, context)
        window = self.config.revision_window_seconds
        # words stay as long as the alignment made them: _fill_long_words looks for them
        result = self.recognizer.transcribe(
            audio, prompt=prompt, window_seconds=window, draft=draft, shorten_words=False
        )
        cost = StepCost.of(result)
        if self.config.revision_window_seconds > 0 and _unpunctuated(result.text, self.config.unpunctuated_retry_words):
            retry = self.recognizer.transcribe(audio, prompt=prompt, draft=result.tokens, shorten_words=False)
            cost.add(StepCost.of(retry))
            if retry.avg_logprob > result.avg_logprob:
                result = retry
        if _rejected(result, self.config):
            return None, cost
        heard = start + len(audio) / SAMPLE_RATE
        words = without_padding_echo(_in_stream_time(result, start, heard), heard)
        if keep_until is not None:
            words = [w for w in words if w.start < keep_until]
        return words, cost
