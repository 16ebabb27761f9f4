"""Settings kept between runs (QSettings: an ini file in the user's config folder)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings

from transcriber.session.workspace import EngineSettings
from transcriber.whisper.loading import DEFAULT_MODEL


@dataclass
class AppSettings:
    model: str = DEFAULT_MODEL
    input_device: str = ""  # a device name; "" is the system default
    vad_aggressiveness: int = 2
    max_speakers: int = 8
    separator: bool = False

    @classmethod
    def load(cls, store: QSettings) -> AppSettings:
        defaults = cls()
        return cls(
            model=str(store.value("model", defaults.model)),
            input_device=str(store.value("input_device", defaults.input_device)),
            vad_aggressiveness=int(store.value("vad_aggressiveness", defaults.vad_aggressiveness)),
            max_speakers=int(store.value("max_speakers", defaults.max_speakers)),
            separator=str(store.value("separator", defaults.separator)).lower() == "true",
        )

    def save(self, store: QSettings) -> None:
        for key, value in vars(self).items():
            store.setValue(key, value)
        store.sync()

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(self.model, self.vad_aggressiveness, self.max_speakers, separator=self.separator)
