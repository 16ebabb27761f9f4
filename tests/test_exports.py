"""Exporters, readers and the transcript builder."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import meeteval
import pytest

from transcriber.engine.events import (
    CostSample,
    PartialText,
    SpeakerRelabelled,
    TurnBoundaryMoved,
    TurnDiscarded,
    TurnEnded,
    TurnSplit,
    TurnStarted,
    WordsCommitted,
)
from transcriber.transcript import exporters
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.exporters import FORMATS
from transcriber.transcript.model import Transcript, Turn, Word
from transcriber.transcript.readers import read_json, read_rttm, read_seglst, read_transcript

# A sentence that is longer than one subtitle cue (> 84 characters and > 7 s).
LONG_SENTENCE = (
    "so the plan for the next quarter is to ship the offline transcriber first "
    "and then look at speaker naming and the export formats that people asked for"
)


def _words(text: str, start: float, step: float) -> list[Word]:
    return [
        Word(text=token, start=round(start + i * step, 3), end=round(start + i * step + step * 0.8, 3))
        for i, token in enumerate(text.split())
    ]


@pytest.fixture
def transcript() -> Transcript:
    long_words = _words(LONG_SENTENCE, 10.0, 0.5)
    turns = [
        Turn(1, "S1", 0, 0.25, 2.5, _words("Hello everyone, café <time> & more", 0.3, 0.35)),
        Turn(2, "S2", 1, 1.75, 4.125, _words("Hi Alice --> welcome.", 1.8, 0.5)),
        Turn(3, "S1", 0, 10.0, long_words[-1].end + 0.1, long_words),
        Turn(4, "S2", 1, 30.0, 33.0, _words("wrong words", 30.1, 1.0), edited_text="Right words here"),
        Turn(5, "S3", 0, 40.0, 41.5, []),  # speech without recognised words
    ]
    return Transcript(
        turns=turns,
        speaker_names={"S1": "Alice Smith"},
        audio_path="/recordings/team meeting.wav",
        duration=45.0,
        cost_summary={"total_seconds": 1.5, "stage_seconds": {"encoder": 1.0, "decoder": 0.5}},
    )


# --- helpers to parse subtitles ---------------------------------------------------

SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"
VTT_TIME = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"


def _to_seconds(match: tuple[str, ...]) -> float:
    hours, minutes, seconds, millis = (int(part) for part in match)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _parse_cues(text: str, time_pattern: str) -> list[tuple[float, float, str]]:
    """Blocks separated by blank lines; returns (start, end, text) per cue."""
    timing = re.compile(rf"^{time_pattern} --> {time_pattern}$")
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        index = next(i for i, line in enumerate(lines) if "-->" in line)
        match = timing.match(lines[index])
        assert match, f"bad timing line: {lines[index]!r}"
        groups = match.groups()
        cues.append((_to_seconds(groups[:4]), _to_seconds(groups[4:]), "\n".join(lines[index + 1 :])))
    return cues


def _expected_cue_count(transcript: Transcript) -> int:
    return sum(len(exporters._chunk(exporters._timed_tokens(turn))) for turn in transcript.turns)


# --- JSON ----------------------------------------------------------------------------


def test_json_round_trip_is_exact(transcript: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "meeting.json"
    exporters.write_json(transcript, path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["format"] == exporters.JSON_FORMAT
    assert raw["version"] == exporters.JSON_VERSION
    assert "café" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert read_json(path).to_dict() == transcript.to_dict()
    assert read_transcript(path).to_dict() == transcript.to_dict()


def test_read_json_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "something-else", "turns": []}), encoding="utf-8")
    with pytest.raises(ValueError):
        read_json(path)


# --- SegLST, RTTM, STM ----------------------------------------------------------------


def test_seglst_round_trip(transcript: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "meeting.seglst.json"
    exporters.write_seglst(transcript, path)
    back = read_transcript(path)
    original = transcript.sorted_turns()
    assert len(back.turns) == len(original)
    for turn, read in zip(original, back.sorted_turns(), strict=True):
        assert read.speaker == transcript.display_name(turn.speaker)
        assert read.channel == turn.channel
        assert read.start == pytest.approx(turn.start, abs=1e-3)
        assert read.end == pytest.approx(turn.end, abs=1e-3)
        assert read.text == turn.text
    segments = json.loads(path.read_text(encoding="utf-8"))
    assert {segment["session_id"] for segment in segments} == {"team_meeting"}
    assert {segment["channel"] for segment in segments} == {1, 2}


def test_seglst_reader_picks_a_session(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    segments = [
        {"session_id": "a", "speaker": "x", "start_time": 0, "end_time": 1, "words": "one two"},
        {"session_id": "b", "speaker": "y", "start_time": 2, "end_time": 3, "words": "three"},
    ]
    path.write_text(json.dumps(segments), encoding="utf-8")
    with pytest.raises(ValueError):
        read_seglst(path)
    only_b = read_seglst(path, session_id="b")
    assert [turn.text for turn in only_b.turns] == ["three"]
    words = read_seglst(path, session_id="a").turns[0].words
    assert [w.text for w in words] == ["one", "two"]
    assert 0.0 <= words[0].start < words[0].end <= words[1].start < words[1].end <= 1.0


def test_rttm_round_trip(transcript: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "meeting.rttm"
    exporters.write_rttm(transcript, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(transcript.turns)  # no turn of the fixture pauses for 1 s between words
    for line in lines:
        fields = line.split()
        assert len(fields) == 10
        assert fields[0] == "SPEAKER" and fields[1] == "team_meeting"
        assert re.fullmatch(r"\d+\.\d{3}", fields[3]) and re.fullmatch(r"\d+\.\d{3}", fields[4])
    back = read_rttm(path)
    for turn, read in zip(transcript.sorted_turns(), back.sorted_turns(), strict=True):
        assert read.speaker == transcript.display_name(turn.speaker).replace(" ", "_")
        assert read.channel == turn.channel
        ((start, end),) = turn.speech_spans()
        assert read.start == pytest.approx(start, abs=1e-3)
        assert read.end == pytest.approx(end, abs=1e-3)
        assert read.words == []
    # turn 4's words end at 31.9 s: its last second is not shown as speech
    assert back.sorted_turns()[3].end == pytest.approx(32.4)
    assert back.speakers == ["Alice_Smith", "S2", "S3"]


def test_rttm_gives_where_the_speaker_is_heard() -> None:
    """A turn that the VAD kept open over long silence between its words (far-off talk,
    room noise) is two stretches of speech in RTTM; a turn without words stays whole."""
    words = [Word("Yeah,", 5.6, 5.9), Word("right.", 6.0, 6.3), Word("Okay.", 16.8, 17.2)]
    transcript = Transcript(turns=[Turn(1, "S1", 0, 5.5, 17.3, words), Turn(2, "S2", 0, 20.0, 21.0, [])])
    assert transcript.turns[0].speech_spans() == [(5.5, pytest.approx(6.8)), (pytest.approx(16.3), 17.3)]
    rows = [line.split() for line in exporters.render_rttm(transcript, uri="m").splitlines()]
    assert [(r[7], float(r[3]), float(r[4])) for r in rows] == [
        ("S1", 5.5, 1.3),
        ("S1", 16.3, 1.0),
        ("S2", 20.0, 1.0),
    ]


def test_rttm_uri_argument(transcript: Transcript) -> None:
    text = exporters.render_rttm(transcript, uri="my session")
    assert all(line.split()[1] == "my_session" for line in text.splitlines())


def test_meeteval_loads_seglst(transcript: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "meeting.seglst.json"
    exporters.write_seglst(transcript, path)
    loaded = meeteval.io.SegLST.load(path)
    assert len(loaded) == len(transcript.turns)
    assert sorted(loaded.unique("speaker")) == ["Alice Smith", "S2", "S3"]
    assert [s["words"] for s in loaded][0] == "Hello everyone, café <time> & more"
    # A hypothesis scored against itself must give no errors.
    result = meeteval.wer.cpwer(reference=loaded, hypothesis=loaded)
    assert result["team_meeting"].error_rate == 0


def test_meeteval_loads_stm(transcript: Transcript, tmp_path: Path) -> None:
    path = tmp_path / "meeting.stm"
    exporters.write_stm(transcript, path)
    loaded = meeteval.io.STM.load(path)
    assert len(loaded.lines) == len(transcript.turns)
    assert {line.speaker_id for line in loaded.lines} == {"Alice_Smith", "S2", "S3"}
    texts = {line.transcript for line in loaded.lines}
    assert "Right words here" in texts and "" in texts
    # sclite needs lines sorted by channel, then start time.
    keys = [(str(line.channel), float(line.begin_time)) for line in loaded.lines]
    assert keys == sorted(keys)


# --- subtitles -------------------------------------------------------------------------


def test_srt_cues(transcript: Transcript) -> None:
    text = exporters.render_srt(transcript)
    cues = _parse_cues(text, SRT_TIME)
    numbers = [block.split("\n")[0] for block in text.strip().split("\n\n")]
    assert numbers == [str(i) for i in range(1, len(cues) + 1)]
    # The empty turn has no cue; the 14 s long turn is split in two.
    assert len(cues) == _expected_cue_count(transcript) == 5
    starts = [start for start, _, _ in cues]
    assert starts == sorted(starts)
    for start, end, body in cues:
        assert end >= start
        assert end - start <= exporters.CUE_MAX_SECONDS
        assert all(len(line) <= 60 for line in body.split("\n"))
        assert "-->" not in body
    assert cues[0][2].startswith("Alice Smith: Hello")
    assert cues[0][0] == pytest.approx(0.25, abs=1e-3)


def test_long_turn_is_split_at_word_boundaries(transcript: Transcript) -> None:
    long_turn = transcript.turn(3)
    cues = [cue for cue in exporters.subtitle_cues(transcript) if cue.cue_id.startswith("turn-3")]
    assert len(cues) >= 2
    assert " ".join(cue.text for cue in cues) == LONG_SENTENCE
    for cue in cues:
        assert len(cue.text) <= exporters.CUE_MAX_CHARS
    assert cues[0].start == long_turn.start and cues[-1].end == long_turn.end
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:], strict=False))


def test_vtt_cues_and_escaping(transcript: Transcript) -> None:
    text = exporters.render_vtt(transcript)
    assert text.startswith("WEBVTT\n\n")
    body = text.split("\n\n", 1)[1]
    cues = _parse_cues(body, VTT_TIME)
    assert len(cues) == _expected_cue_count(transcript)
    starts = [start for start, _, _ in cues]
    assert starts == sorted(starts)
    for _, _, cue_text in cues:
        assert re.match(r"^<v (Alice Smith|S2)>", cue_text), cue_text
        assert cue_text.endswith("</v>")
        assert "-->" not in cue_text
    assert "café &lt;time&gt; &amp; more" in " ".join(cues[0][2].split())
    assert "Hi Alice --&gt; welcome." in text


def test_txt_paragraphs(transcript: Transcript) -> None:
    text = exporters.render_txt(transcript)
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) == len(transcript.turns)
    assert paragraphs[0] == "[00:00:00.3 - 00:00:02.5] Alice Smith: Hello everyone, café <time> & more"
    assert paragraphs[1] == "[00:00:01.8 - 00:00:04.1] S2: Hi Alice --> welcome."
    assert paragraphs[3] == "[00:00:30.0 - 00:00:33.0] S2: Right words here"
    assert paragraphs[4] == "[00:00:40.0 - 00:00:41.5] S3:"


# --- every format ------------------------------------------------------------------------


def test_formats_registry(transcript: Transcript, tmp_path: Path) -> None:
    assert set(FORMATS) == {"txt", "srt", "vtt", "json", "rttm", "seglst", "stm"}
    assert FORMATS["seglst"][0] == ".seglst.json"
    for name, (extension, render) in FORMATS.items():
        path = tmp_path / f"out{extension}"
        exporters.write_format(transcript, name, path)
        assert path.read_text(encoding="utf-8") == render(transcript)
        buffer = io.StringIO()
        getattr(exporters, f"write_{name}")(transcript, buffer)
        assert buffer.getvalue() == render(transcript)


def test_rename_reaches_every_export(transcript: Transcript) -> None:
    transcript.rename_speaker("S2", "Bob Jones")
    for name, (_, render) in FORMATS.items():
        text = render(transcript)
        assert "Bob" in text, name
        if name == "json":
            assert json.loads(text)["speaker_names"]["S2"] == "Bob Jones"
        else:
            # Only ids are "S<n>"; S3 has no name, S2 must not show any more.
            assert not re.search(r"\bS2\b", text), name
            assert re.search(r"\bS3\b", text) or name in ("srt", "vtt"), name


# --- builder -------------------------------------------------------------------------------


def test_builder_follows_the_event_stream() -> None:
    builder = TranscriptBuilder()
    hello = (Word("Hello", 0.5, 0.9, 0.9), Word("there.", 1.0, 1.4))
    events = [
        TurnStarted(turn_id=1, channel=0, speaker="S1", start=0.4),
        PartialText(turn_id=1, channel=0, text="Hello the", audio_time=1.2),
    ]
    builder.apply_all(events)
    assert builder.open_turns == [1]
    assert builder.partial_text(1) == "Hello the"

    builder.apply(WordsCommitted(turn_id=1, channel=0, words=hello, audio_time=1.5))
    assert builder.partial_text(1) == ""  # the committed words replace the partial
    builder.apply_all(
        [
            TurnStarted(turn_id=2, channel=1, speaker="S2", start=1.2),
            PartialText(turn_id=2, channel=1, text="yes", audio_time=1.6),
            CostSample(
                channel=0,
                audio_start=0.0,
                audio_end=2.0,
                stage_seconds={"encoder": 0.2, "decoder": 0.1},
                stage_flops={"encoder": 4e9},
                backlog=0.5,
                encoder_blocks_run=1.0,
            ),
            TurnEnded(turn_id=1, channel=0, speaker="S1", start=0.4, end=1.6),
        ]
    )
    assert builder.open_turns == [2]
    assert not builder.is_open(1) and builder.is_open(2)
    assert builder.partial_text(2) == "yes"

    builder.apply_all(
        [
            WordsCommitted(turn_id=2, channel=1, words=(Word("Yes", 1.3, 1.7),), audio_time=2.0),
            PartialText(turn_id=1, channel=0, text="stale", audio_time=2.1),  # turn 1 is closed
            TurnEnded(turn_id=2, channel=1, speaker="S2", start=1.2, end=2.2),
            SpeakerRelabelled(turn_id=2, channel=1, old_speaker="S2", new_speaker="S1"),
            CostSample(
                channel=1,
                audio_start=1.0,
                audio_end=3.0,
                stage_seconds={"encoder": 0.4, "vad": 0.05},
                stage_flops={"encoder": 2e9, "vad": 1e6},
                backlog=0.25,
                encoder_blocks_run=0.5,
            ),
        ]
    )
    transcript = builder.transcript
    assert builder.open_turns == []
    assert builder.partial_text(1) == ""
    assert [(t.turn_id, t.speaker, t.channel, t.start, t.end) for t in transcript.sorted_turns()] == [
        (1, "S1", 0, 0.4, 1.6),
        (2, "S1", 1, 1.2, 2.2),
    ]
    assert transcript.turn(1).text == "Hello there."
    assert transcript.turn(1).words[0].confidence == 0.9
    assert transcript.turn(2).text == "Yes"
    assert transcript.speakers == ["S1"]
    assert transcript.duration == pytest.approx(3.0)

    cost = transcript.cost_summary
    assert cost["samples"] == 2
    assert cost["stage_seconds"] == pytest.approx({"encoder": 0.6, "decoder": 0.1, "vad": 0.05})
    assert cost["stage_flops"] == pytest.approx({"encoder": 6e9, "vad": 1e6})
    assert cost["total_seconds"] == pytest.approx(0.75)
    assert cost["total_flops"] == pytest.approx(6e9 + 1e6)
    assert cost["audio_seconds"] == pytest.approx(3.0)  # [0, 2] and [1, 3] overlap
    assert cost["channel_audio_seconds"] == pytest.approx(4.0)
    assert cost["mean_encoder_blocks_run"] == pytest.approx((2 * 1.0 + 2 * 0.5) / 4)
    assert cost["real_time_factor"] == pytest.approx(0.25)
    assert cost["max_backlog"] == 0.5
    # The summary must survive the JSON export unchanged.
    assert json.loads(exporters.render_json(transcript))["cost_summary"] == cost


def test_builder_keeps_words_that_arrive_before_their_turn() -> None:
    builder = TranscriptBuilder()
    builder.apply(WordsCommitted(turn_id=7, channel=1, words=(Word("early", 5.0, 5.4),), audio_time=5.5))
    assert builder.transcript.turn(7).text == "early"
    builder.apply(TurnEnded(turn_id=7, channel=1, speaker="S4", start=4.9, end=5.6))
    turn = builder.transcript.turn(7)
    assert (turn.speaker, turn.start, turn.end) == ("S4", 4.9, 5.6)
    with pytest.raises(TypeError):
        builder.apply("not an event")  # type: ignore[arg-type]


def test_builder_splits_a_turn_in_two_voices() -> None:
    builder = TranscriptBuilder()
    words = (Word("Yes.", 0.5, 0.8), Word("No,", 1.6, 1.9), Word("never.", 2.0, 2.4), Word("Fine.", 3.0, 3.3))
    builder.apply_all(
        [
            TurnStarted(turn_id=1, channel=0, speaker="S1", start=0.4),
            WordsCommitted(turn_id=1, channel=0, words=words, audio_time=3.5),
            TurnEnded(turn_id=1, channel=0, speaker="S1", start=0.4, end=3.5),
            TurnSplit(turn_id=1, channel=0, keep_words=1, at=1.2, new_turn_id=5, speaker="S2"),
            TurnSplit(turn_id=5, channel=0, keep_words=2, at=2.7, new_turn_id=6, speaker="S1"),
        ]
    )
    turns = builder.transcript.sorted_turns()
    assert [(t.turn_id, t.speaker, t.start, t.end, t.text) for t in turns] == [
        (1, "S1", 0.4, 1.2, "Yes."),
        (5, "S2", 1.2, 2.7, "No, never."),
        (6, "S1", 2.7, 3.5, "Fine."),
    ]


def test_a_split_keeps_every_turn_in_time_order() -> None:
    """Split times come from word times, which can be out of order: a second split of
    the same turn at 1.0 s, before the first one's 1.2 s, must not leave the piece in
    between ending before it starts (meeteval rejects such a segment)."""
    builder = TranscriptBuilder()
    words = (Word("Yes.", 0.5, 0.8), Word("No,", 1.6, 1.9), Word("never.", 0.9, 2.4), Word("Fine.", 3.0, 3.3))
    builder.apply_all(
        [
            TurnStarted(turn_id=1, channel=0, speaker="S1", start=0.4),
            WordsCommitted(turn_id=1, channel=0, words=words, audio_time=3.5),
            TurnEnded(turn_id=1, channel=0, speaker="S1", start=0.4, end=3.5),
            TurnSplit(turn_id=1, channel=0, keep_words=1, at=1.2, new_turn_id=5, speaker="S2"),
            TurnSplit(turn_id=5, channel=0, keep_words=1, at=1.0, new_turn_id=6, speaker="S1"),
            TurnSplit(turn_id=6, channel=0, keep_words=1, at=9.0, new_turn_id=7, speaker="S3"),
        ]
    )
    turns = builder.transcript.sorted_turns()
    assert all(t.start <= t.end for t in turns), [(t.turn_id, t.start, t.end) for t in turns]
    assert [t.text for t in sorted(turns, key=lambda t: t.turn_id)] == ["Yes.", "No,", "never.", "Fine."]
    assert builder.transcript.turn(7).end == 3.5


def test_a_moved_boundary_gives_words_to_the_other_turn() -> None:
    builder = TranscriptBuilder()
    first = (Word("Yes,", 0.5, 0.8), Word("fine.", 0.9, 1.5), Word("The", 1.5, 1.6))
    second = (Word("wind", 1.7, 2.0), Word("blew.", 2.0, 2.4))
    builder.apply_all(
        [
            TurnStarted(turn_id=1, channel=0, speaker="S1", start=0.4),
            WordsCommitted(turn_id=1, channel=0, words=first, audio_time=1.6),
            TurnEnded(turn_id=1, channel=0, speaker="S1", start=0.4, end=1.6),
            TurnStarted(turn_id=2, channel=0, speaker="S2", start=1.6),
            WordsCommitted(turn_id=2, channel=0, words=second, audio_time=2.5),
            TurnEnded(turn_id=2, channel=0, speaker="S2", start=1.6, end=2.5),
            TurnBoundaryMoved(turn_id=1, next_turn_id=2, channel=0, at=1.3, keep_words=2),
        ]
    )
    assert [(t.speaker, t.start, t.end, t.text) for t in builder.transcript.sorted_turns()] == [
        ("S1", 0.4, 1.3, "Yes, fine."),
        ("S2", 1.3, 2.5, "The wind blew."),
    ]
    # and back: the next turn's first word goes to the turn before
    builder.apply(TurnBoundaryMoved(turn_id=1, next_turn_id=2, channel=0, at=1.65, keep_words=3))
    assert [t.text for t in builder.transcript.sorted_turns()] == ["Yes, fine. The", "wind blew."]


def test_builder_drops_a_discarded_turn() -> None:
    builder = TranscriptBuilder()
    builder.apply_all(
        [
            TurnStarted(turn_id=1, channel=0, speaker="S1", start=0.0),
            PartialText(turn_id=1, channel=0, text="Thank", audio_time=1.0),
            TurnEnded(turn_id=1, channel=0, speaker="S1", start=0.0, end=1.2),
            TurnStarted(turn_id=2, channel=0, speaker="S1", start=2.0),
            WordsCommitted(turn_id=2, channel=0, words=(Word("Right.", 2.1, 2.5),), audio_time=3.0),
            TurnEnded(turn_id=2, channel=0, speaker="S1", start=2.0, end=2.6),
            TurnDiscarded(turn_id=1, channel=0),
        ]
    )
    assert [t.turn_id for t in builder.transcript.turns] == [2]
    assert builder.open_turns == [] and builder.partial_text(1) == ""


def test_cost_coverage_merges_out_of_order_samples() -> None:
    builder = TranscriptBuilder()
    for start, end in [(4.0, 5.0), (0.0, 1.0), (2.0, 3.0), (0.5, 4.5), (10.0, 11.0)]:
        builder.apply(CostSample(channel=0, audio_start=start, audio_end=end))
    assert builder.transcript.cost_summary["audio_seconds"] == pytest.approx(6.0)
