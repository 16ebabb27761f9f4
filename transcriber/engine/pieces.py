"""A file on every core: pieces cut in pauses, each through its own streaming engine.

One stream keeps two cores poorly busy: the streaming decoder's matrices are small,
and torch's threads inside each operation gave 1.27x over one core (3 simulated 0S
meetings, 2 cores). A file is all there at once, so, as whisper.cpp's
``--processors`` does, it is cut into as many pieces as the engine has threads, and
each piece goes through a ``StreamingEngine`` of its own, one torch thread each, at
the same time: the same streaming path as live audio, fed as fast as one core
allows. Each cut is the middle of the longest pause within ``CUT_SEARCH_SECONDS``
around its nominal place. At the end the turns of all pieces are clustered
together (``settle_speakers``), as one stream's are. Only files of at least twice
``EngineConfig.min_piece_seconds`` are cut: each piece learns its speakers afresh,
which costs accuracy on short files.

Piece 0 runs on the calling thread and its events come as they happen; the other
pieces' events follow once all are done, with turn numbers that go on from piece
0's, then the end-of-stream events. Every piece decodes the file from its start
(without recognising what comes before its cut), so memory stays flat however long
the file is.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator

import numpy as np
import torch
import webrtcvad

from transcriber.engine.engine import SAMPLE_RATE, StreamingEngine, settle_speakers
from transcriber.engine.events import Event
from transcriber.engine.vad import FRAME_SAMPLES

CUT_SEARCH_SECONDS = 30.0  # at most; at most half a piece
TURN_ID_STRIDE = 1_000_000  # piece k numbers its turns from k x this while it runs

BlockSource = Callable[[float], Iterator[np.ndarray]]  # 16 kHz mono blocks from a time on
EventHandler = Callable[[list[Event]], None]
Progress = Callable[[float], None]  # seconds of audio recognised so far, all pieces together


def piece_count(duration: float | None, threads: int, min_piece_seconds: float) -> int:
    """How many pieces a file of ``duration`` seconds is cut into."""
    if duration is None or threads < 2 or not duration >= 2 * min_piece_seconds:
        return 1
    return min(threads, int(duration // min_piece_seconds))


def pieces_for(engine: object, duration: float | None) -> int:
    """How many pieces ``engine`` cuts a file of ``duration`` seconds into: one unless
    it is a plain ``StreamingEngine`` (the separator's two channels run as one stream)."""
    if not isinstance(engine, StreamingEngine):
        return 1
    return piece_count(duration, engine.config.threads, engine.config.min_piece_seconds)


def longest_pause(audio: np.ndarray, audio_start: float, aggressiveness: int) -> float:
    """The middle of the longest run of unvoiced VAD frames in ``audio`` (which begins
    at ``audio_start`` seconds, on a frame boundary), on a frame boundary."""
    vad = webrtcvad.Vad(aggressiveness)
    n_frames = len(audio) // FRAME_SAMPLES
    pcm = (np.clip(audio[: n_frames * FRAME_SAMPLES], -1.0, 1.0) * 32767).astype("<i2")
    best_start, best_length, run_start = 0, 0, 0
    for i, frame in enumerate(pcm.reshape(n_frames, FRAME_SAMPLES)):
        if vad.is_speech(frame.tobytes(), SAMPLE_RATE):
            run_start = i + 1
        elif i + 1 - run_start > best_length:
            best_start, best_length = run_start, i + 1 - run_start
    middle = best_start + best_length // 2 if best_length else n_frames // 2
    return audio_start + middle * FRAME_SAMPLES / SAMPLE_RATE


class _Stopped(Exception):
    """Another piece failed or the caller gave up: this one ends without a result."""


class _Cut:
    """Where one piece ends and the next begins; the next piece's thread finds it."""

    def __init__(self, nominal: float, search_seconds: float):
        # the search starts on a VAD frame boundary, so the cut is on one too
        self.search_from = int((nominal - search_seconds / 2) * SAMPLE_RATE) // FRAME_SAMPLES * FRAME_SAMPLES
        self.search_samples = int(search_seconds * SAMPLE_RATE)
        self._found = threading.Event()
        self._sample: int | None = None

    def set(self, sample: int | None) -> None:
        """``None``: the audio ended before the search; the piece before goes on to the end."""
        if not self._found.is_set():
            self._sample = sample
            self._found.set()

    def wait(self, stopped: Callable[[], bool]) -> int | None:
        while not self._found.wait(0.1):
            if stopped():
                raise _Stopped
        return self._sample


class _Piece:
    def __init__(self, engine: StreamingEngine, start: _Cut | None, end: _Cut | None, stopped: Callable[[], bool]):
        self.engine = engine
        self.start, self.end = start, end
        self.stopped = stopped
        self.fed_seconds = 0.0
        self.events: list[Event] = []
        self.error: BaseException | None = None

    def run(self, blocks_from: BlockSource, on_events: EventHandler | None) -> None:
        """Recognise the piece; its events go to ``on_events``, or are kept in ``events``."""
        emit = on_events or self.events.extend
        try:
            blocks = self._blocks(blocks_from)
            for block in blocks:
                if self.stopped():
                    raise _Stopped
                emit(self.engine.feed(block))
                self.fed_seconds += len(block) / SAMPLE_RATE
            emit(self.engine.end_stream())
        except _Stopped:
            pass
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread
            self.error = error
        finally:
            if self.start is not None:
                self.start.set(None)  # the piece before must not wait for this cut forever

    def _blocks(self, blocks_from: BlockSource) -> Iterator[np.ndarray]:
        """The piece's audio: from its cut (found here) to the next one."""
        position = 0 if self.start is None else self.start.search_from
        source = blocks_from(position / SAMPLE_RATE)
        if self.start is not None:
            searched, source = _take(source, self.start.search_samples)
            if len(searched) < self.start.search_samples:
                return  # shorter than its duration said: the piece before takes the rest
            cut = longest_pause(searched, position / SAMPLE_RATE, self.engine.config.vad_aggressiveness)
            cut_sample = round(cut * SAMPLE_RATE)
            self.start.set(cut_sample)
            self.engine.start_at(cut_sample / SAMPLE_RATE)
            # the rest of the search window in blocks of a second, as the file's
            # blocks come: the engine's steps follow the blocks it is fed
            rest = searched[cut_sample - position :]
            seconds = [rest[i : i + SAMPLE_RATE] for i in range(0, len(rest), SAMPLE_RATE)]
            source = itertools.chain(seconds, source)
            position = cut_sample
        end: int | None = None
        for block in source:
            if self.end is not None and end is None and position + len(block) > self.end.search_from:
                end = self.end.wait(self.stopped)
                if end is None:
                    self.end = None
            if end is not None:
                block = block[: max(0, end - position)]
            if len(block):
                yield block
                position += len(block)
            if end is not None and position >= end:
                return


def _take(blocks: Iterator[np.ndarray], samples: int) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """The next ``samples`` samples of ``blocks`` (fewer at the end), and the blocks after them."""
    taken: list[np.ndarray] = []
    count = 0
    for block in blocks:
        taken.append(block)
        count += len(block)
        if count >= samples:
            break
    audio = np.concatenate(taken) if taken else np.zeros(0, dtype=np.float32)
    return audio[:samples], itertools.chain([audio[samples:]], blocks)


def transcribe_in_pieces(
    engine: StreamingEngine,
    blocks_from: BlockSource,
    pieces: int,
    duration: float,
    on_events: EventHandler,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> float | None:
    """Run a file of ``duration`` seconds through ``engine`` (fresh) and ``pieces - 1``
    fresh copies of it at once, one thread each; all events go to ``on_events`` on
    this thread, the end of stream's (``finish``) included. Returns where the audio
    ended, in seconds; None if ``cancel`` was set (then the other pieces' events
    and the end of stream's are not sent)."""
    stop = threading.Event()

    def stopped() -> bool:
        return stop.is_set() or any(run.error is not None for run in runs) or (cancel is not None and cancel.is_set())

    search_seconds = min(CUT_SEARCH_SECONDS, duration / pieces / 2)
    cuts = [_Cut(duration * k / pieces, search_seconds) for k in range(1, pieces)]
    engines = [engine] + [engine.fresh() for _ in cuts]
    for k, piece_engine in enumerate(engines[1:], start=1):
        piece_engine.turn_ids = itertools.count(k * TURN_ID_STRIDE + 1)
    bounds = [None, *cuts, None]
    runs = [_Piece(e, start, end, stopped) for e, start, end in zip(engines, bounds[:-1], bounds[1:], strict=True)]
    threads = [threading.Thread(target=_on_one_core, args=(run, blocks_from), daemon=True) for run in runs[1:]]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for thread in threads:
            thread.start()

        def emit(events: list[Event]) -> None:
            on_events(events)
            if progress is not None:
                progress(sum(run.fed_seconds for run in runs))

        runs[0].run(blocks_from, emit)
        for thread in threads:
            while thread.is_alive():
                thread.join(0.25)
                if progress is not None:
                    progress(sum(run.fed_seconds for run in runs))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        torch.set_num_threads(threads_before)
    for run in runs:
        if run.error is not None:
            raise run.error
    if cancel is not None and cancel.is_set():
        return None
    final = settle_speakers(engines)
    final += [event for e in engines for event in e._cost_sample(force=True)]
    renumber = _renumbering(engines)
    on_events([renumber(event) for run in runs[1:] for event in run.events])
    on_events([renumber(event) for event in final])
    return max(e.time for e in engines)


def _on_one_core(run: _Piece, blocks_from: BlockSource) -> None:
    torch.set_num_threads(1)
    run.run(blocks_from, None)


def _renumbering(engines: list[StreamingEngine]) -> Callable[[Event], Event]:
    """Turn numbers of piece k go on from where piece k - 1's (end of stream included) stop."""
    bases = [0]
    for k, piece_engine in enumerate(engines[:-1]):
        used = next(piece_engine.turn_ids) - k * TURN_ID_STRIDE - 1
        bases.append(bases[-1] + used)

    def number(turn_id: int) -> int:
        piece, local = divmod(turn_id, TURN_ID_STRIDE)
        return bases[piece] + local

    def renumber(event: Event) -> Event:
        fields = {
            name: number(getattr(event, name))
            for name in ("turn_id", "next_turn_id", "new_turn_id")
            if hasattr(event, name)
        }
        return dataclasses.replace(event, **fields) if fields else event

    return renumber
