"""Tests for transcriber.audio.decode: formats, resampling quality, errors, memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from transcriber.audio import decode
from transcriber.audio.decode import SAMPLE_RATE, AudioDecodeError, iter_blocks, load_audio, probe

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JFK = SHARED_DATA / "utterances" / "jfk_whisper" / "jfk.flac"

# Lossy codecs are judged on the waveform too: at these bitrates they keep phase,
# so a sweep still correlates almost perfectly with the original.
LOSSLESS_MIN_CORRELATION = 0.999
LOSSY_MIN_CORRELATION = 0.95
LENGTH_TOLERANCE_SECONDS = 0.005


# --- signal and file helpers ------------------------------------------------------


def sweep(rate: int, seconds: float, f0: float = 100.0, f1: float = 3000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * signal.chirp(t, f0, seconds, f1)).astype(np.float32)


def sine(rate: int, seconds: float, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def reference_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """One-shot, whole-signal resample: what block-wise streaming must match."""
    g = np.gcd(SAMPLE_RATE, rate)
    return signal.resample_poly(x.astype(np.float64), SAMPLE_RATE // g, rate // g)


def encode_av(path: Path, mono: np.ndarray, rate: int, codec: str, channels: int) -> Path:
    """Encode with PyAV, in small frames with running pts like a real encoder feed."""
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        for start in range(0, mono.size, 4096):
            planes = np.tile(mono[start : start + 4096], (channels, 1))
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes), format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_sf(path: Path, mono: np.ndarray, rate: int, channels: int, **kwargs: str) -> Path:
    data = np.tile(mono[:, None], (1, channels)) if channels > 1 else mono
    sf.write(str(path), data, rate, **kwargs)
    return path


def correlation(a: np.ndarray, b: np.ndarray, edge: int = 200) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[edge : n - edge], b[edge : n - edge])[0, 1])


def peak_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[spectrum.argmax()])


@pytest.fixture
def force_backend(monkeypatch: pytest.MonkeyPatch):
    """Make probe() choose one backend, to test the av path on files libsndfile reads."""

    def force(backend: str) -> None:
        monkeypatch.setattr(decode, "_backends_for", lambda _file: (backend,))

    return force


# --- formats ----------------------------------------------------------------------

# name, rate, channels, writer(path, mono, rate, channels), lossless
FORMATS = [
    ("wav", 44100, 2, lambda p, x, r, c: write_sf(p, x, r, c), True),
    ("flac", 8000, 1, lambda p, x, r, c: write_sf(p, x, r, c), True),
    ("ogg", 22050, 2, lambda p, x, r, c: write_sf(p, x, r, c, format="OGG", subtype="VORBIS"), False),
    ("opus", 48000, 2, lambda p, x, r, c: encode_av(p, x, r, "libopus", c), False),
    ("mp3", 44100, 2, lambda p, x, r, c: encode_av(p, x, r, "libmp3lame", c), False),
    ("m4a", 44100, 2, lambda p, x, r, c: encode_av(p, x, r, "aac", c), False),
    ("webm", 48000, 1, lambda p, x, r, c: encode_av(p, x, r, "libopus", c), False),
]


@pytest.mark.parametrize(("suffix", "rate", "channels", "write", "lossless"), FORMATS, ids=[f[0] for f in FORMATS])
def test_format_decodes_to_16k_mono(tmp_path: Path, suffix, rate, channels, write, lossless) -> None:
    seconds = 2.5
    x = sweep(rate, seconds, f1=min(3000.0, rate * 0.4))
    path = write(tmp_path / f"sweep.{suffix}", x, rate, channels)

    info = probe(path)
    assert (info.sample_rate, info.channels) == (rate, channels)
    assert info.duration_seconds == pytest.approx(seconds, abs=0.05)

    blocks = list(iter_blocks(path, block_seconds=0.5))
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert all(b.size == SAMPLE_RATE // 2 for b in blocks[:-1])
    assert 0 < blocks[-1].size <= SAMPLE_RATE // 2

    y = np.concatenate(blocks)
    assert abs(y.size / SAMPLE_RATE - seconds) <= LENGTH_TOLERANCE_SECONDS
    minimum = LOSSLESS_MIN_CORRELATION if lossless else LOSSY_MIN_CORRELATION
    assert correlation(y, reference_16k(x, rate)) > minimum


@pytest.mark.parametrize("backend", [decode.SOUNDFILE, decode.PYAV])
def test_1khz_sine_at_44k_is_1khz_at_16k_and_seamless(tmp_path: Path, force_backend, backend: str) -> None:
    rate = 44100
    x = sine(rate, 3.0)
    path = write_sf(tmp_path / "sine.wav", x, rate, channels=2, subtype="FLOAT")
    force_backend(backend)

    # Blocks much shorter than the reader's chunks, and not a divisor of them, so
    # both reader and block boundaries fall all over the waveform.
    blocks = list(iter_blocks(path, block_seconds=0.037))
    y = np.concatenate(blocks)

    assert y.size == 3 * SAMPLE_RATE
    assert peak_frequency(y, SAMPLE_RATE) == pytest.approx(1000.0, abs=2.0)
    assert correlation(y, reference_16k(x, rate)) > 0.99

    # A click shows up as a sample-to-sample step larger than the sine's own slope.
    steps = np.abs(np.diff(y[100:-100]))
    max_slope = 0.5 * 2 * np.pi * 1000.0 / SAMPLE_RATE
    assert steps.max() < 1.05 * max_slope
    boundaries = np.cumsum([b.size for b in blocks[:-1]])
    assert np.abs(y[boundaries] - y[boundaries - 1]).max() < 1.05 * max_slope


def test_16k_mono_passes_through_unchanged(tmp_path: Path) -> None:
    x = sweep(SAMPLE_RATE, 1.3)
    path = write_sf(tmp_path / "native.wav", x, SAMPLE_RATE, channels=1, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), x)


def test_stereo_is_averaged_not_summed(tmp_path: Path) -> None:
    left = np.full(SAMPLE_RATE, 0.5, dtype=np.float32)
    right = np.full(SAMPLE_RATE, -0.25, dtype=np.float32)
    path = tmp_path / "lr.wav"
    sf.write(str(path), np.stack([left, right], axis=1), SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.125, atol=1e-6)


def test_backends_agree_on_the_same_file(tmp_path: Path, force_backend) -> None:
    path = write_sf(tmp_path / "s.flac", sweep(22050, 2.0), 22050, channels=2)
    from_soundfile = load_audio(path)
    force_backend(decode.PYAV)
    from_av = load_audio(path)
    assert from_av.size == from_soundfile.size
    np.testing.assert_allclose(from_av, from_soundfile, atol=1e-4)


# --- real speech -------------------------------------------------------------------

needs_shared_data = pytest.mark.skipif(
    not JFK.is_file(),
    reason=f"real speech not available: {JFK} is absent (../shared/data lies beside the checkout)",
)


@needs_shared_data
def test_real_speech_flac_reads_exactly() -> None:
    expected, rate = sf.read(str(JFK), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    np.testing.assert_array_equal(load_audio(JFK), expected.mean(axis=1))


@needs_shared_data
@pytest.mark.parametrize(("suffix", "codec", "rate"), [("m4a", "aac", 16000), ("webm", "libopus", 48000)])
def test_real_speech_survives_lossy_round_trip(tmp_path: Path, suffix: str, codec: str, rate: int) -> None:
    speech = load_audio(JFK)
    source = speech if rate == SAMPLE_RATE else signal.resample_poly(speech, rate // SAMPLE_RATE, 1)
    path = encode_av(tmp_path / f"jfk.{suffix}", source.astype(np.float32), rate, codec, channels=1)
    decoded = load_audio(path)
    assert abs(decoded.size - speech.size) / SAMPLE_RATE <= LENGTH_TOLERANCE_SECONDS
    assert correlation(decoded, speech) > 0.9


# --- errors -------------------------------------------------------------------------


def assert_decode_error(path: Path, reason: str) -> None:
    with pytest.raises(AudioDecodeError) as caught:
        iter_blocks(path)  # raises at the call, before any iteration
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ") and reason in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    assert_decode_error(tmp_path / "y.flac", "file not found")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "folder.wav").mkdir()
    assert_decode_error(tmp_path / "folder.wav", "not a regular file")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "blank.m4a").write_bytes(b"")
    assert_decode_error(tmp_path / "blank.m4a", "empty file")


# (libsndfile writes a sample-less FLAC as a 0-byte file: that case is the one above.)
@pytest.mark.parametrize(("suffix", "subtype"), [("wav", "PCM_16"), ("wav", "FLOAT"), ("aiff", "PCM_24")])
def test_audio_file_with_no_samples(tmp_path: Path, suffix: str, subtype: str) -> None:
    path = tmp_path / f"x.{suffix}"
    sf.write(str(path), np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype=subtype)
    assert path.stat().st_size > 0  # a header and nothing else
    assert_decode_error(path, "empty audio (0 samples)")


@pytest.mark.parametrize("suffix", ["wav", "mp3", "m4a", "ogg"])
def test_text_renamed_as_audio(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"notes.{suffix}"
    path.write_text("Minutes of the meeting.\nAction items: none.\n" * 20)
    assert_decode_error(path, "not an audio file")


def test_video_without_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "meeting.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    assert_decode_error(path, "not an audio file (no audio stream)")


def test_block_seconds_must_be_positive(tmp_path: Path) -> None:
    path = write_sf(tmp_path / "s.wav", sine(SAMPLE_RATE, 0.1), SAMPLE_RATE, channels=1)
    with pytest.raises(ValueError):
        iter_blocks(path, block_seconds=0)


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_blocks_from_a_time_are_the_file_from_there(tmp_path: Path, suffix: str) -> None:
    """Each piece of a file cut for several cores reads it from its cut (engine/pieces.py)."""
    path = tmp_path / f"sweep{suffix}"
    sf.write(path, sweep(44100, 3.0), 44100)
    whole = load_audio(path)
    for start in (0.0, 0.7301, 2.0):
        later = np.concatenate(list(iter_blocks(path, block_seconds=0.25, start_seconds=start)))
        np.testing.assert_array_equal(later, whole[round(start * SAMPLE_RATE) :])


# --- internals that file-level tests reach only by chance -------------------------------


def test_reblock_keeps_every_sample_in_order() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(0, 3000, 200)]
    blocks = list(decode._reblock(iter(chunks), block_samples=1234))
    np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate(chunks))
    assert all(b.size == 1234 for b in blocks[:-1]) and 0 < blocks[-1].size <= 1234


def test_resample_restarts_cleanly_when_the_rate_changes() -> None:
    def chunks() -> Iterator[tuple[np.ndarray, int]]:
        yield from ((c, 44100) for c in np.split(sine(44100, 1.0), 10))
        yield from ((c, 8000) for c in np.split(sine(8000, 1.0), 10))

    y = np.concatenate(list(decode._resample(chunks())))
    assert y.size == 2 * SAMPLE_RATE
    for half in (y[:SAMPLE_RATE], y[SAMPLE_RATE:]):
        assert peak_frequency(half, SAMPLE_RATE) == pytest.approx(1000.0, abs=2.0)


# --- memory -------------------------------------------------------------------------------


def write_long_noise_wav(path: Path, minutes: int, rate: int = 8000) -> int:
    """Write minutes of noise chunk by chunk, so the test itself stays small too."""
    rng = np.random.default_rng(1)
    chunk = rate * 60
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        for _ in range(minutes):
            handle.write((0.1 * rng.standard_normal(chunk)).astype(np.float32))
    return minutes * chunk


def test_memory_stays_flat_for_a_long_file(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil", reason="psutil measures resident memory")
    minutes, rate = 30, 8000
    frames = write_long_noise_wav(tmp_path / "long.wav", minutes, rate)
    process = psutil.Process()

    baseline = process.memory_info().rss
    peak = baseline
    produced = 0
    # Decoding it whole would take ~115 MB of float32 at 16 kHz; streaming must not.
    for index, block in enumerate(iter_blocks(tmp_path / "long.wav", block_seconds=1.0)):
        produced += block.size
        if index % 20 == 0:
            peak = max(peak, process.memory_info().rss)

    assert produced == frames * SAMPLE_RATE // rate
    assert (peak - baseline) / 2**20 < 50
