"""Build a ready-to-use recognizer from a model name or path."""

from __future__ import annotations

import json
import warnings

import torch

from transcriber.whisper.decoding import WhisperRecognizer
from transcriber.whisper.loading import DEFAULT_MODEL, load_whisper, quantize_int8, resolve_model
from transcriber.whisper.tokenizer import WhisperTokenizer

# openai-whisper's default suppress_tokens ("-1"): symbols that are almost never speech
_DEFAULT_SUPPRESS = [1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93]


def load_recognizer(model: str = DEFAULT_MODEL, int8: bool = True, threads: int | None = None) -> WhisperRecognizer:
    if threads:
        torch.set_num_threads(threads)
    source = resolve_model(model)
    whisper = load_whisper(source)
    multilingual = whisper.is_multilingual
    tokenizer_file = source.tokenizer_file
    if tokenizer_file is None:  # an openai .pt checkpoint carries no tokenizer: borrow a packaged one
        tokenizer_file = resolve_model("base" if multilingual else "tiny.en").tokenizer_file
    tokenizer = WhisperTokenizer.from_file(tokenizer_file, multilingual=multilingual)
    suppress, suppress_begin = _DEFAULT_SUPPRESS, [tokenizer.encode(" ")[0], tokenizer.eot]
    if source.config_file is not None:
        config = json.loads(source.config_file.read_text())
        suppress = config.get("suppress_ids", suppress)
        suppress_begin = config.get("suppress_ids_begin", suppress_begin)
    if int8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quantize_dynamic warns that it is deprecated
            whisper = quantize_int8(whisper)
    return WhisperRecognizer(whisper, tokenizer, suppress, suppress_begin)
