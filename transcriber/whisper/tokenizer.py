"""Whisper's byte-level BPE tokenizer and its special tokens, from tokenizer.json."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer


@dataclass
class WhisperTokenizer:
    bpe: HFTokenizer
    multilingual: bool
    language: str = "en"

    @classmethod
    def from_file(cls, path: Path, multilingual: bool, language: str = "en") -> WhisperTokenizer:
        return cls(HFTokenizer.from_file(str(path)), multilingual, language)

    def special(self, text: str) -> int:
        token = self.bpe.token_to_id(text)
        if token is None:
            raise KeyError(f"tokenizer has no special token {text}")
        return token

    @property
    def eot(self) -> int:
        return self.special("<|endoftext|>")

    @property
    def sot(self) -> int:
        return self.special("<|startoftranscript|>")

    @property
    def sot_prev(self) -> int:
        return self.special("<|startofprev|>")

    @property
    def no_speech(self) -> int:
        for name in ("<|nospeech|>", "<|nocaptions|>"):
            if self.bpe.token_to_id(name) is not None:
                return self.special(name)
        raise KeyError("no no-speech token")

    @property
    def no_timestamps(self) -> int:
        return self.special("<|notimestamps|>")

    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1

    @property
    def sot_sequence(self) -> list[int]:
        if not self.multilingual:
            return [self.sot]
        return [self.sot, self.special(f"<|{self.language}|>"), self.special("<|transcribe|>")]

    def encode(self, text: str) -> list[int]:
        return self.bpe.encode(text, add_special_tokens=False).ids

    def decode(self, tokens: list[int]) -> str:
        return self.bpe.decode([t for t in tokens if t < self.eot], skip_special_tokens=False)

    def token_text(self, token: int) -> str:
        return self.bpe.decode([token], skip_special_tokens=False)
