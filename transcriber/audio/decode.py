"""Streaming decode of audio files into 16 kHz mono float32 blocks.

Two backends: libsndfile (via soundfile) for the formats it reads natively, and
PyAV (ffmpeg) for everything else and as a fallback. Both feed one pipeline:
downmix to mono by averaging, resample with a stateful resampler, and cut into
fixed-size blocks. Nothing holds more than a few blocks, so a three-hour
recording decodes in flat memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000

SOUNDFILE = "soundfile"
PYAV = "av"

# Containers libsndfile cannot open: skip straight to ffmpeg instead of paying
# for a failed libsndfile probe (and its confusing error) first.
_AV_ONLY_SUFFIXES = frozenset(
    {".m4a", ".mp4", ".m4v", ".mov", ".aac", ".webm", ".mkv", ".mka", ".wma", ".3gp", ".amr", ".ac3"}
)
# mp3 goes to libsndfile only when this build of it has mpg123 support (>= 1.1).
_SF_HAS_MP3 = "MP3" in sf.available_formats()

# Source frames per read on the soundfile path; large enough to amortise the
# per-call overhead, small enough that memory stays in the low megabytes.
_READ_SECONDS = 0.5
_MIN_READ_FRAMES = 4096

# A few corrupt packets in a long recording should not lose the whole meeting,
# but a file that is garbage throughout should fail rather than yield silence.
_MAX_BAD_PACKETS = 100


class AudioDecodeError(Exception):
    """A file could not be decoded; the message is "<file name>: <reason>"."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class _UnsupportedError(AudioDecodeError):
    """This backend cannot read the file; probe() then tries the next one."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, before any resampling (native rate and channels)."""

    path: Path
    duration_seconds: float | None  # None when the container does not say
    sample_rate: int
    channels: int
    codec: str  # e.g. "PCM_16", "VORBIS", "aac", "opus"
    container: str  # e.g. "WAV", "OGG", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    backend: str  # SOUNDFILE or PYAV: which decoder iter_blocks will use


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Describe an audio file without decoding it; raises AudioDecodeError."""
    file = _existing_file(path)
    last_error: AudioDecodeError | None = None
    for backend in _backends_for(file):
        try:
            return _PROBES[backend](file)
        except _UnsupportedError as error:
            last_error = error
    assert last_error is not None
    raise AudioDecodeError(file, last_error.reason) from last_error


def iter_blocks(
    path: str | os.PathLike[str], block_seconds: float = 1.0, start_seconds: float = 0.0
) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 blocks of block_seconds (the last may be shorter),
    from ``start_seconds`` on (what comes before is decoded and dropped: exact for
    every format, at the cost of decoding it).

    The file is probed here, so a missing or non-audio file raises
    AudioDecodeError at the call, not at the first next(). Errors found only
    while decoding (no samples at all, a decoder failure) raise from the iterator.
    """
    if not block_seconds > 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds}")
    info = probe(path)
    block_samples = max(1, round(block_seconds * SAMPLE_RATE))
    blocks = _decode(info, block_samples)
    skip = round(start_seconds * SAMPLE_RATE)
    return _after(blocks, skip) if skip > 0 else blocks


def _after(blocks: Iterator[np.ndarray], skip: int) -> Iterator[np.ndarray]:
    for block in blocks:
        if skip >= len(block):
            skip -= len(block)
            continue
        yield block[skip:]
        skip = 0


def load_audio(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a whole (short) file into one 16 kHz mono float32 array."""
    return np.concatenate(list(iter_blocks(path, block_seconds=30.0)))


# --- probing -------------------------------------------------------------------


def _existing_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.exists():
        raise AudioDecodeError(file, "file not found")
    if not file.is_file():
        raise AudioDecodeError(file, "not a regular file")
    if file.stat().st_size == 0:
        raise AudioDecodeError(file, "empty file (0 bytes)")
    return file


def _backends_for(file: Path) -> tuple[str, ...]:
    suffix = file.suffix.lower()
    if suffix in _AV_ONLY_SUFFIXES or (suffix == ".mp3" and not _SF_HAS_MP3):
        return (PYAV,)
    # libsndfile sniffs the header rather than trusting the suffix, so trying it
    # first is cheap; ffmpeg then covers whatever it rejects.
    return (SOUNDFILE, PYAV)


def _probe_soundfile(file: Path) -> AudioInfo:
    try:
        info = sf.info(str(file))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise _UnsupportedError(file, f"not readable by libsndfile ({error})") from error
    if info.frames <= 0:
        raise AudioDecodeError(file, "empty audio (0 samples)")
    return AudioInfo(
        path=file,
        duration_seconds=info.frames / info.samplerate,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        codec=info.subtype,
        container=info.format,
        backend=SOUNDFILE,
    )


def _probe_av(file: Path) -> AudioInfo:
    with _open_container(file) as container:
        stream = _audio_stream(file, container)
        return AudioInfo(
            path=file,
            duration_seconds=_av_duration(container, stream),
            sample_rate=int(stream.codec_context.sample_rate or stream.rate or 0),
            channels=int(stream.codec_context.channels or 0),
            codec=stream.codec_context.name,
            container=container.format.name,
            backend=PYAV,
        )


_PROBES = {SOUNDFILE: _probe_soundfile, PYAV: _probe_av}


def _open_container(file: Path) -> av.container.InputContainer:
    try:
        # Broken tag encodings are common in the wild and irrelevant to audio.
        return av.open(str(file), metadata_errors="ignore")
    except av.FFmpegError as error:
        # PyAV's errno-based errors (permissions, I/O) are also OSErrors; every
        # other failure to open means ffmpeg found no format it knows.
        if isinstance(error, OSError):
            raise AudioDecodeError(file, f"cannot open ({_ffmpeg_reason(error)})") from error
        raise _UnsupportedError(file, "not an audio file (unrecognised format)") from error


def _audio_stream(file: Path, container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise _UnsupportedError(file, "not an audio file (no audio stream)")
    return container.streams.audio[0]


def _av_duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _ffmpeg_reason(error: av.FFmpegError) -> str:
    return error.strerror or str(error)


# --- decoding ------------------------------------------------------------------


def _decode(info: AudioInfo, block_samples: int) -> Iterator[np.ndarray]:
    chunks = _read_soundfile(info.path) if info.backend == SOUNDFILE else _read_av(info.path)
    produced = 0
    for block in _reblock(_resample(chunks), block_samples):
        produced += block.size
        yield block
    if produced == 0:
        raise AudioDecodeError(info.path, "empty audio (0 samples)")


def _read_soundfile(file: Path) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (mono float32 chunk, native sample rate) straight from libsndfile."""
    try:
        with sf.SoundFile(str(file)) as handle:
            rate = int(handle.samplerate)
            frames = max(_MIN_READ_FRAMES, int(rate * _READ_SECONDS))
            for data in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
                yield _downmix(data.T), rate
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioDecodeError(file, f"decode failed ({error})") from error


def _read_av(file: Path) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (mono float32 chunk, native sample rate) decoded by ffmpeg."""
    with _open_container(file) as container:
        stream = _audio_stream(file, container)
        frames = _decode_packets(file, container, stream)
        limit = _exact_duration(container, stream)
        chunks = ((_frame_to_mono(frame), int(frame.sample_rate)) for frame in frames if frame.samples)
        yield from chunks if limit is None else _truncate(chunks, limit)


def _decode_packets(
    file: Path, container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> Iterator[av.AudioFrame]:
    bad_packets = 0
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.FFmpegError as error:
            bad_packets += 1
            log.warning("%s: skipping undecodable packet (%s)", file.name, _ffmpeg_reason(error))
            if bad_packets > _MAX_BAD_PACKETS:
                raise AudioDecodeError(file, f"decode failed ({_ffmpeg_reason(error)})") from error


def _exact_duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    """The duration to trim to, where the container states it exactly.

    ffmpeg's mp4 demuxer drops the AAC encoder's leading priming samples (edit
    list) but still decodes the zero padding of the last frame, up to one codec
    frame (~23 ms) past the end. The mp4 stream duration is exact, so trim to it;
    other containers' durations are often estimates, so they are left alone.
    """
    if "mp4" not in container.format.name.split(","):
        return None
    duration = _av_duration(container, stream)
    return duration if duration else None


def _truncate(chunks: Iterable[tuple[np.ndarray, int]], seconds: float) -> Iterator[tuple[np.ndarray, int]]:
    elapsed = 0.0
    for mono, rate in chunks:
        keep = round((seconds - elapsed) * rate)
        if keep <= 0:
            return
        yield mono[:keep], rate
        elapsed += min(keep, mono.size) / rate


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    channels = frame.layout.nb_channels
    data = frame.to_ndarray()
    if not frame.format.is_planar:
        # Packed samples come back interleaved; make them (channels, samples).
        data = data.reshape(-1, channels).T
    return _downmix(_to_float(data))


def _to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.float32:
        return data
    if data.dtype == np.float64:
        return data.astype(np.float32)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    raise TypeError(f"unsupported sample type {data.dtype}")


def _downmix(data: np.ndarray) -> np.ndarray:
    """(channels, samples) -> contiguous mono float32, averaging the channels."""
    if data.shape[0] == 1:
        return np.ascontiguousarray(data[0], dtype=np.float32)
    return data.mean(axis=0, dtype=np.float32)


class StreamResampler:
    """Mono float32 resampler to SAMPLE_RATE that keeps its filter state between
    calls, so block boundaries leave no seams (unlike resampling each block)."""

    def __init__(self, source_rate: int) -> None:
        self.source_rate = source_rate
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def process(self, mono: np.ndarray) -> np.ndarray:
        frame = av.AudioFrame.from_ndarray(mono[np.newaxis, :], format="flt", layout="mono")
        frame.sample_rate = self.source_rate
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        return self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames: list[av.AudioFrame]) -> np.ndarray:
        if not frames:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


def _resample(chunks: Iterable[tuple[np.ndarray, int]]) -> Iterator[np.ndarray]:
    """Bring every chunk to SAMPLE_RATE; a rate change mid-stream (rare, but
    some AAC and concatenated streams do it) flushes and restarts the filter."""
    resampler: StreamResampler | None = None
    for mono, rate in chunks:
        if resampler is not None and resampler.source_rate != rate:
            yield resampler.flush()
            resampler = None
        if rate == SAMPLE_RATE:
            yield mono
            continue
        if resampler is None:
            resampler = StreamResampler(rate)
        yield resampler.process(mono)
    if resampler is not None:
        yield resampler.flush()


def _reblock(chunks: Iterable[np.ndarray], block_samples: int) -> Iterator[np.ndarray]:
    """Cut a stream of arbitrary-length chunks into block_samples-long blocks."""
    pending: list[np.ndarray] = []
    pending_samples = 0
    for chunk in chunks:
        if chunk.size == 0:
            continue
        pending.append(chunk)
        pending_samples += chunk.size
        if pending_samples < block_samples:
            continue
        buffer = np.concatenate(pending)
        whole = (buffer.size // block_samples) * block_samples
        for start in range(0, whole, block_samples):
            yield buffer[start : start + block_samples]
        pending = [buffer[whole:]] if whole < buffer.size else []
        pending_samples = buffer.size - whole
    if pending_samples:
        yield np.concatenate(pending)
