"""Greedy Whisper decoding over a short audio window, with word timestamps.

The window is encoded with a short audio context (its own length plus about a
second of silence: without that padding, short contexts fall into repetition
loops), decoded greedily with guards against loops and against text invented
on silence, then aligned word by word with the cross-attention of the
alignment heads and dynamic time warping, as openai-whisper's ``timing.py``.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from transcriber.whisper.arbitrators import Arbitrators, GatedAudioEncoder
from transcriber.whisper.audio_features import ENCODER_POSITIONS_PER_SECOND, SAMPLE_RATE, log_mel_spectrogram
from transcriber.whisper.local_attention import SlidingWindowEncoder
from transcriber.whisper.model import AudioEncoder, DecoderCache, LayerStack, Whisper, traced_layers
from transcriber.whisper.tokenizer import WhisperTokenizer

# draft tokens proposed per decoder call (see WhisperRecognizer._greedy)
DRAFT_TOKENS = 7
# shorten_long_words leaves words up to this long alone (whisper's bar: 2 x median)
LONG_WORD_SECONDS = 1.0
PUNCTUATION = set("\"'“¿([{-.。,，!！?？:：”)]}、")


@dataclass
class TimedWord:
    text: str
    start: float  # seconds from the start of the window
    end: float
    probability: float
    tokens: list[int] = field(default_factory=list)


@dataclass
class WindowResult:
    tokens: list[int]
    words: list[TimedWord]
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    encoder_seconds: float = 0.0
    decoder_seconds: float = 0.0
    encoder_flops: float = 0.0
    decoder_flops: float = 0.0
    decoder_tokens: int = 0  # tokens run through the decoder, rejected proposals included


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


def _repeats_tail(tokens: list[int], max_ngram: int = 48) -> int:
    """Length to cut when the tail repeats itself, else 0.

    A short n-gram must occur three times in a row (people do say "no, no"),
    a stretch of five tokens or more twice: a doubled phrase at the end of a
    window is Whisper's typical loop on short audio contexts.
    """
    for n in range(1, max_ngram + 1):
        repeats = 3 if n < 5 else 2
        if len(tokens) < n * repeats:
            break
        tail = tokens[-n:]
        if all(tokens[len(tokens) - (k + 1) * n : len(tokens) - k * n] == tail for k in range(repeats)):
            return n * (repeats - 1)
    return 0


def _dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotonic alignment path through ``cost`` (tokens x frames), row by row.

    Within a row the left-move recurrence is a running minimum of
    (diagonal-or-up cost - prefix sum), which numpy computes without a Python
    loop over frames.
    """
    n_rows, n_cols = cost.shape
    acc = np.full((n_rows + 1, n_cols + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n_rows + 1, n_cols + 1), dtype=np.int8)  # 0 diagonal, 1 up, 2 left
    for i in range(1, n_rows + 1):
        diag = acc[i - 1, :-1]
        up = acc[i - 1, 1:]
        from_above = np.minimum(diag, up) + cost[i - 1]
        prefix = np.concatenate([[0.0], np.cumsum(cost[i - 1])])
        # best over k <= j of from_above[k] + sum(cost[k+1..j])
        running = np.minimum.accumulate(from_above - prefix[1:]) + prefix[1:]
        acc[i, 1:] = running
        trace[i, 1:] = np.where(running < from_above, 2, np.where(diag <= up, 0, 1))
    i, j = n_rows, n_cols
    text_idx, time_idx = [], []
    while i > 0 and j > 0:
        text_idx.append(i - 1)
        time_idx.append(j - 1)
        move = trace[i, j]
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        else:
            j -= 1
    return np.array(text_idx[::-1]), np.array(time_idx[::-1])


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = F.pad(x, (pad, pad), mode="reflect")
    return padded.unfold(-1, width, 1).median(dim=-1).values


def propose(draft: list[int], text: list[int], limit: int) -> list[int]:
    """Up to ``limit`` tokens of ``draft`` that follow where it agrees with the end of
    ``text`` (the last three tokens, else two, else one; of several places, the one
    nearest the same position in the text); the draft's start while ``text`` is empty."""
    if not draft or limit <= 0:
        return []
    if not text:
        return draft[:limit]
    for n in (3, 2, 1):
        if len(text) < n:
            continue
        key = text[-n:]
        ends = [i + n for i in range(len(draft) - n + 1) if draft[i : i + n] == key]
        if ends:
            end = min(ends, key=lambda e: abs(e - len(text)))
            return draft[end : end + limit]
    return []


def shorten_long_words(words: list[TimedWord], audio: np.ndarray, offset: float = 0.0) -> list[TimedWord]:
    """Words the alignment stretched over a pause, cut to the loudest part of their span.

    Dynamic time warping must give every frame to some word, so a word next to a
    pause or to noise can take all of it (an AMI excerpt: "Yeah," from 5.5 to 17.3 s,
    said at its end). openai-whisper's ``timing.py`` cuts such words to twice the
    median word length (at most 1.4 s), keeping the side away from a sentence end;
    here the limit is at least ``LONG_WORD_SECONDS`` and the part kept is the loudest.
    ``offset``: the time of ``audio``'s first sample on the words' clock.
    """
    durations = [w.end - w.start for w in words if w.end > w.start]
    if not durations:
        return words
    limit = max(LONG_WORD_SECONDS, 2 * min(0.7, float(np.median(durations))))
    shortened = []
    for word in words:
        if word.end - word.start > limit:
            start = offset + loudest_stretch(audio, word.start - offset, word.end - offset, limit)
            word = replace(word, start=start, end=start + limit)
        shortened.append(word)
    return shortened


def loudest_stretch(audio: np.ndarray, start: float, end: float, seconds: float) -> float:
    """Where the ``seconds`` of ``audio`` inside [start, end] with the most energy begin
    (times in seconds from the start of ``audio``; 10 ms steps)."""
    step = SAMPLE_RATE // 100
    first, last = max(0, int(start * 100)), min(int(end * 100), len(audio) // step)
    width = max(1, round(seconds * 100))
    if last - first <= width:
        return max(start, first / 100)
    frames = audio[first * step : last * step].reshape(-1, step)
    energy = np.concatenate([[0.0], np.cumsum(np.square(frames, dtype=np.float64).sum(axis=1))])
    sums = energy[width:] - energy[:-width]
    return (first + int(np.argmax(sums))) / 100


def _words_after(words: list[TimedWord], n_tokens: int) -> list[TimedWord]:
    """The words that follow the first ``n_tokens`` tokens."""
    seen = 0
    kept = []
    for word in words:
        if seen >= n_tokens:
            kept.append(word)
        seen += len(word.tokens)
    return kept


class WhisperRecognizer:
    """Encodes and decodes one audio window at a time; holds no stream state."""

    def __init__(
        self,
        model: Whisper,
        tokenizer: WhisperTokenizer,
        suppress_ids: list[int],
        suppress_at_begin: list[int],
        pad_seconds: float = 1.0,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.pad_seconds = pad_seconds
        vocab = model.dims.n_vocab
        suppress = set(suppress_ids)
        # every special token but end-of-text and the timestamps: languages, tasks...
        suppress.update(range(tokenizer.eot + 1, tokenizer.timestamp_begin))
        self.suppress_mask = torch.zeros(vocab, dtype=torch.bool)
        self.suppress_mask[[t for t in suppress if t < vocab]] = True
        self.suppress_begin = [t for t in suppress_at_begin if t < vocab]
        # greedy decoding calls the decoder once for every few tokens: the traced layers
        # take half the time (model.traced_layers); None runs the decoder's own
        self.decoder_layers: LayerStack | None = traced_layers(model.decoder)

    def set_arbitrators(self, arbitrators: Arbitrators | None) -> None:
        """Switch the encoder's operating point (None: every sub-block runs)."""
        encoder = self.model.encoder
        if not isinstance(encoder, GatedAudioEncoder):
            encoder = GatedAudioEncoder(self.plain_encoder)
            self.model.encoder = encoder
        encoder.set_arbitrators(arbitrators)

    @property
    def plain_encoder(self) -> AudioEncoder:
        """The encoder without gates (what a gated or baseline encoder wraps)."""
        encoder = self.model.encoder
        return encoder.encoder if isinstance(encoder, GatedAudioEncoder | SlidingWindowEncoder) else encoder

    @property
    def arbitrators(self) -> Arbitrators | None:
        encoder = self.model.encoder
        return encoder.arbitrators if isinstance(encoder, GatedAudioEncoder) else None

    # -- cost estimates (multiply-adds x 2) ---------------------------------------------------
    def decoder_flops(self, n_tokens: int, positions: int) -> float:
        d, layers, vocab = self.model.dims.n_text_state, self.model.dims.n_text_layer, self.model.dims.n_vocab
        cross_kv = 2 * layers * positions * 2 * d * d
        per_token = 2 * (layers * (14 * d * d + 2 * positions * d) + d * vocab)
        return float(cross_kv + n_tokens * per_token)

    # -- the work ------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, audio: np.ndarray, window_seconds: float = 0.0) -> torch.Tensor:
        """The encoder's output for ``audio`` followed by ``pad_seconds`` of silence, or by
        as much silence as fills ``window_seconds`` if that is more."""
        silence = max(int(self.pad_seconds * SAMPLE_RATE), int(window_seconds * SAMPLE_RATE) - len(audio))
        padded = np.concatenate([audio, np.zeros(silence, dtype=np.float32)])
        mel = log_mel_spectrogram(padded, self.model.dims.n_mels)
        frames = min(mel.shape[-1] - mel.shape[-1] % 2, 2 * self.model.dims.n_audio_ctx)
        return self.model.encoder(mel[None, :, :frames])

    @torch.inference_mode()
    def transcribe(
        self,
        audio: np.ndarray,
        prompt: list[int] | None = None,
        prefix: list[int] | None = None,
        with_words: bool = True,
        window_seconds: float = 0.0,
        draft: list[int] | None = None,
        shorten_words: bool = True,
    ) -> WindowResult:
        """Decode ``audio``; ``prompt`` is earlier text, given to the decoder as context;
        ``prefix`` is text the window is known to start with: only what follows is returned;
        ``window_seconds``: encode at least this much (the audio, then silence);
        ``draft``: text tokens the window probably says (an earlier decode of much the
        same audio), which make decoding faster where they are right;
        ``shorten_words``: words stretched over a pause are cut (``shorten_long_words``)."""
        prefix = prefix or []
        started = time.perf_counter()
        features = self.encode(audio, window_seconds)
        encoded = time.perf_counter()
        positions = features.shape[1]
        # keys and values of the audio, for the cross-attention: the same for both passes
        audio_cache = self.model.decoder.new_cache(features)
        result = self._greedy(audio_cache, prompt or [], prefix, len(audio) / SAMPLE_RATE, draft or [])
        if with_words and result.tokens:
            words = self._align(audio_cache, [*prefix, *result.tokens], len(audio) / SAMPLE_RATE)
            result.words = [w for w in _words_after(words, len(prefix)) if w.text]
            if shorten_words:
                result.words = shorten_long_words(result.words, audio)
        finished = time.perf_counter()
        result.encoder_seconds = encoded - started
        result.decoder_seconds = finished - encoded
        result.encoder_flops = self.model.encoder.counter.last_flops  # what really ran, gates included
        # greedy steps plus one alignment pass over all tokens
        result.decoder_flops = self.decoder_flops(result.decoder_tokens + len(result.tokens) + 4, positions)
        return result

    def _greedy(
        self, audio_cache: DecoderCache, prompt: list[int], prefix: list[int], audio_seconds: float, draft: list[int]
    ) -> WindowResult:
        """Greedy decoding in timestamp mode; returns the text tokens.

        Timestamp tokens are decoded (and then dropped) because without them
        Whisper tends to stop at the first sentence end of a longer window.

        Tokens of ``draft`` that may come next (``propose``) go through the decoder
        with the token just chosen, in one call; each proposed token the greedy
        choice agrees with is taken without a call of its own, the first it
        disagrees with ends the proposal (prompt-lookup decoding, a form of
        speculative decoding). A decoder call on CPU costs its weights' reading
        more than its tokens (measured, 2 cores, tiny.en int8: 6.0 ms for 1
        token, 6.3 ms for 8, 11.4 ms for 16), so proposals cost little even when
        rejected. The result is the greedy decode's, but for the int8 layers'
        activation scale, which is taken over all the tokens of a call.
        """
        tok = self.tokenizer
        history = [tok.sot_prev, *prompt[-(self.model.dims.n_text_ctx // 2 - 1) :]] if prompt else []
        # a forced prefix opens with the window's first timestamp, as a decoded one would
        forced = [tok.timestamp_begin, *prefix] if prefix else []
        context = [*history, *tok.sot_sequence, *forced]
        # about 3 tokens a second is typical speech: allow 3x that before calling it a loop
        max_tokens = min(int(10 + 12 * audio_seconds) - len(prefix), self.model.dims.n_text_ctx - len(context) - 1)
        cache = audio_cache.fresh()
        decoder = self.model.decoder
        hidden, _ = decoder(torch.tensor([context]), cache, layers=self.decoder_layers)
        tokens_run = len(context)
        no_speech_prob = float(decoder.logits(hidden[0, len(history)]).float().softmax(-1)[tok.no_speech])
        pending = [decoder.logits(hidden[0, -1])]  # scores of the next positions
        proposed: list[int] = []  # draft tokens in the cache whose scores are pending[1:]
        sampled: list[int] = list(forced)
        logprob_sum = 0.0
        last_timestamp = tok.timestamp_begin + round(audio_seconds * 50)
        for step in range(max_tokens):
            logits = pending.pop(0).float().masked_fill(self.suppress_mask, -math.inf)
            if not sampled:
                logits[self.suppress_begin] = -math.inf
            self._apply_timestamp_rules(logits, sampled, last_timestamp)
            logprobs = logits.log_softmax(-1)
            token = int(logprobs.argmax())
            logprob_sum += float(logprobs[token])
            if token == tok.eot:
                break
            sampled.append(token)
            cut = _repeats_tail([t for t in sampled if t < tok.eot])
            if cut:
                new_text = [t for t in sampled[len(forced) :] if t < tok.eot]
                sampled = [*forced, *new_text[: max(0, len(new_text) - cut)]]
                break
            if proposed and token == proposed[0]:
                proposed.pop(0)
                continue
            if proposed:  # the proposal ends here: its other tokens leave the cache
                cache.truncate(cache.length - len(proposed))
            proposed = propose(draft, [t for t in sampled if t < tok.eot], min(DRAFT_TOKENS, max_tokens - step - 2))
            hidden, _ = decoder(torch.tensor([[token, *proposed]]), cache, layers=self.decoder_layers)
            tokens_run += 1 + len(proposed)
            pending = list(decoder.logits(hidden[0]))
        tokens = [t for t in sampled[len(forced) :] if t < tok.eot]
        text = tok.decode(tokens)
        return WindowResult(
            tokens=tokens,
            words=[],
            text=text,
            avg_logprob=logprob_sum / (len(sampled) + 1),
            no_speech_prob=no_speech_prob,
            compression_ratio=compression_ratio(text),
            decoder_tokens=tokens_run,
        )

    def _apply_timestamp_rules(self, logits: torch.Tensor, sampled: list[int], last_timestamp: int) -> None:
        """openai-whisper's ApplyTimestampRules, for one greedy hypothesis (in place)."""
        begin = self.tokenizer.timestamp_begin
        eot = self.tokenizer.eot
        logits[begin + 1 + (last_timestamp - begin) :] = -math.inf  # nothing after the window
        if not sampled:
            logits[:begin] = -math.inf  # the first token is a timestamp...
            logits[begin + 50 + 1 :] = -math.inf  # ...of at most 1 s
            return
        last_was_timestamp = sampled[-1] >= begin
        penultimate_was_timestamp = len(sampled) < 2 or sampled[-2] >= begin
        if last_was_timestamp:
            if penultimate_was_timestamp:
                logits[begin:] = -math.inf  # a segment needs text
            else:
                logits[:eot] = -math.inf  # a segment end: next is a timestamp or the end
        timestamps = [t for t in sampled if t >= begin]
        if timestamps:
            lowest = timestamps[-1] if last_was_timestamp and not penultimate_was_timestamp else timestamps[-1] + 1
            logits[begin:lowest] = -math.inf  # time never runs backwards
        logprobs = logits.log_softmax(-1)
        if torch.logsumexp(logprobs[begin:], dim=-1) > logprobs[:begin].max():
            logits[:begin] = -math.inf

    def split_words(self, tokens: list[int]) -> list[list[int]]:
        """Group tokens into words: a word starts at a token that begins with a space."""
        words: list[list[int]] = []
        pending: list[int] = []
        for token in tokens:
            pending.append(token)
            piece = self.tokenizer.decode(pending)
            if "\ufffd" in piece:  # a multi-byte character continues in the next token
                continue
            if not words or piece.startswith(" "):
                words.append(pending)
            else:
                words[-1].extend(pending)
            pending = []
        if pending:
            words.append(pending)
        return words

    def _align(self, audio_cache: DecoderCache, tokens: list[int], audio_seconds: float) -> list[TimedWord]:
        tok = self.tokenizer
        prefix = [*tok.sot_sequence, tok.no_timestamps]
        sequence = torch.tensor([[*prefix, *tokens, tok.eot]])
        hidden, cross = self.model.decoder(sequence, audio_cache.fresh(), want_cross_weights=True)
        token_probs = self.model.decoder.logits(hidden[0, len(prefix) - 1 : -1]).float().softmax(-1)
        probs = token_probs[torch.arange(len(tokens) + 1), torch.tensor([*tokens, tok.eot])]
        n_frames = max(1, min(audio_cache.audio_positions, round(audio_seconds * ENCODER_POSITIONS_PER_SECOND)))
        weights = torch.stack([cross[layer][0, head] for layer, head in self.model.alignment_heads])
        weights = weights[:, :, :n_frames].float()
        weights = (weights - weights.mean(dim=-2, keepdim=True)) / (weights.std(dim=-2, keepdim=True) + 1e-8)
        weights = _median_filter(weights, 7).mean(dim=0)
        # The decoder state at a position predicts the *next* token, so the row that
        # places token k is the one before it: rows from <|notimestamps|> to the last
        # text token (openai-whisper's find_alignment does the same). Taking the
        # tokens' own rows instead put every word one token late (~0.3 s).
        matrix = weights[len(prefix) - 1 : -1]
        text_idx, time_idx = _dtw(-matrix.numpy().astype(np.float64))
        jumps = np.diff(np.concatenate([[-1], text_idx])) > 0
        token_times = time_idx[jumps] / ENCODER_POSITIONS_PER_SECOND  # start of each token, then the end
        words: list[TimedWord] = []
        index = 0
        for word_tokens in self.split_words(tokens):
            start = float(token_times[min(index, len(token_times) - 1)])
            index += len(word_tokens)
            end = float(token_times[min(index, len(token_times) - 1)])
            probability = float(probs[index - len(word_tokens) : index].mean())
            # empty words are kept so that token counts stay aligned; callers drop them
            text = tok.decode(word_tokens).strip()
            words.append(TimedWord(text, start, max(end, start), probability, word_tokens))
        return words
