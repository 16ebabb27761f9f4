"""The second pass's pure parts: padding echoes, sharing words out to turns, the builder."""

from __future__ import annotations

from transcriber.engine.engine import share_among_turns
from transcriber.engine.events import TurnEnded, TurnRevised, TurnStarted, WordsCommitted
from transcriber.engine.transducer import SecondPass, TransducerConfig, without_padding_echo
from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.model import Word
from transcriber.whisper.decoding import TimedWord


def _words(text: str, start: float, step: float = 0.3) -> list[TimedWord]:
    return [TimedWord(t, start + i * step, start + (i + 1) * step, 0.9) for i, t in enumerate(text.split())]


def test_a_repeat_squeezed_into_the_padding_is_dropped() -> None:
    said = _words("never made public before.", 8.0)
    echo = [TimedWord(t, 9.51, 9.51, 0.5) for t in "Never made public before.".split()]
    assert [w.text for w in without_padding_echo(said + echo, heard=9.53)] == [w.text for w in said]


def test_a_repeat_squeezed_into_no_time_is_dropped_before_the_end() -> None:
    # 0L seed 1033: the whole sentence again, its words at one instant 0.6 s before the end
    said = _words("It was he who had given immense impetus to that secret movement.", 32.74, 0.32)
    echo = [TimedWord(t, 36.70, 36.70, 0.5) for t in "It was he who had given immense impetus to that secret".split()]
    echo.append(TimedWord("movement.", 36.70, 37.06, 0.5))
    assert [w.text for w in without_padding_echo(said + echo, heard=37.28)] == [w.text for w in said]


def test_a_repeat_that_was_really_said_stays() -> None:
    # "ask not ... ask what": the second "ask" is early in the audio, not in the padding
    words = _words("ask what you can ask what you can", 1.0)
    assert without_padding_echo(words, heard=words[-1].end + 2.0) == words
    # a single repeated closing word is not enough to call it an echo
    words = _words("yes I said yes", 1.0)
    assert without_padding_echo(words, heard=words[-1].end) == words


def test_words_follow_their_streaming_turn_despite_late_timings() -> None:
    streamed = _words("next month.", 4.8) + _words("Thanks, Daniel.", 6.0)
    owners = [0, 0, 1, 1]
    # the long window put "month." after the boundary between the turns (5.85)
    revised = [
        TimedWord("next", 5.3, 5.6, 0.9),
        TimedWord("month.", 5.7, 6.1, 0.9),
        TimedWord("Thanks,", 6.2, 6.5, 0.9),
        TimedWord("Daniel.", 6.5, 6.9, 0.9),
    ]
    first, second = share_among_turns(revised, streamed, owners, [(3.0, 5.7), (6.0, 7.0)])
    assert [w.text for w in first] == ["next", "month."]
    assert [w.text for w in second] == ["Thanks,", "Daniel."]
    assert first[1].start == streamed[1].start, "a word timed outside its turn takes the streaming times"
    assert first[0].start == revised[0].start, "a word timed inside its turn keeps the second pass's times"


def test_new_words_go_by_time_between_turns() -> None:
    streamed = _words("hello there", 0.0) + _words("good morning", 3.0)
    revised = _words("hello there", 0.0) + [TimedWord("friend", 1.0, 1.3, 0.9)] + _words("good morning", 3.0)
    first, second = share_among_turns(revised, streamed, [0, 0, 1, 1], [(0.0, 1.4), (3.0, 3.6)])
    assert [w.text for w in first] == ["hello", "there", "friend"]
    assert [w.text for w in second] == ["good", "morning"]
    # nothing streamed at all: time decides
    first, second = share_among_turns(revised, [], [], [(0.0, 1.4), (3.0, 3.6)])
    assert [w.text for w in second] == ["good", "morning"]


def test_builder_replaces_a_turns_words_with_the_revision() -> None:
    builder = TranscriptBuilder()
    builder.apply(TurnStarted(1, 0, "S1", 0.0))
    builder.apply(WordsCommitted(1, 0, (Word("When", 0.0, 0.4), Word("Wendy", 0.4, 0.8)), 1.0))
    builder.apply(WordsCommitted(1, 0, (Word("grew", 0.8, 1.0), Word("When", 1.0, 1.0)), 1.5))
    builder.apply(TurnEnded(1, 0, "S1", 0.0, 1.2))
    builder.apply(
        TurnRevised(
            1, 0, (Word("When", 0.0, 0.4), Word("Wendy", 0.4, 0.8), Word("grew", 0.8, 1.0), Word("up.", 1.0, 1.2)), 3.0
        )
    )
    (turn,) = builder.transcript.turns
    assert turn.text == "When Wendy grew up."
    assert turn.end == 1.2


def test_a_second_pass_that_went_astray_is_told_from_a_revision() -> None:
    second_pass = SecondPass(recognizer=None, config=TransducerConfig())  # type: ignore[arg-type]
    streamed = _words("his remedies rather to the riches of his patience among the gunboats doing duty", 23.4)
    revised = _words("his remedies rather than to the riches of his patients among the gunboats doing duty", 23.4)
    astray = _words("he had to take his steps to the ground and he was a little bit more concerned", 23.4)
    assert not second_pass._astray(revised, streamed)
    assert second_pass._astray(astray, streamed)
    assert second_pass._skipped_speech(revised[:5], streamed), "far fewer words"
    # a few streaming words are too few to judge by
    assert not second_pass._astray(_words("yes I do", 1.0), _words("guess I do", 1.0))


def test_a_sentence_jumped_over_by_the_second_pass_is_told() -> None:
    """0S seed 1016: the second pass wrote "The death of Joseph ..." and stretched "The"
    over 4.5 s in which the streaming pass had heard a whole sentence; the decode still
    held 24 of the streaming pass's 38 words, above the word-count guard."""
    second_pass = SecondPass(recognizer=None, config=TransducerConfig())  # type: ignore[arg-type]
    streamed = _words("And with a repetition of the same salute which had in my eyes", 10.5, 0.4)
    later = "death of Joseph Herod's brother begged for a moment's loan of the torch which had been signified to Herod"
    streamed += _words("the " + later, 15.3)
    jumped = [TimedWord("The", 10.5, 15.0, 0.5), *_words(later, 15.6)]
    assert len(jumped) >= TransducerConfig().revision_min_word_ratio * len(streamed)
    assert second_pass._skipped_speech(jumped, streamed)
    assert not second_pass._skipped_speech(_words("and with a repetition of the same salute", 10.5, 0.4), streamed[:8])
    # streaming words squeezed into no time (a loop at the end of the audio) were not heard
    said = _words("I saw that we were off the island of Ceylon", 39.8, 0.25)
    loop = [TimedWord(t, 42.2, 42.2, 0.3) for t in "He cuts off the head of".split()]
    assert not second_pass._skipped_speech(said, said + loop)


def test_words_the_prompt_wrote_without_audio_are_dropped() -> None:
    """0S seed 1025: after "... from the house." in the prompt, the second pass wrote "the
    place to be built in the house, so that" where the streaming pass heard "So that",
    all of "place ... house," at 29.34 s, in no time."""
    second_pass = SecondPass(recognizer=None, config=TransducerConfig())  # type: ignore[arg-type]
    streamed = _words("So that, in any weather,", 28.74, 0.5)
    squeezed = [TimedWord(t, 29.34, 29.34, 0.4) for t in "place to be built in the house, so".split()]
    revised = [TimedWord("the", 28.74, 29.34, 0.4), *squeezed, *_words("that in any weather,", 29.34, 0.5)]
    kept = second_pass._without_invented(revised, streamed)
    assert " ".join(w.text for w in kept) == "the so that in any weather,"
    # two words in no time, or words the streaming pass heard, stay
    short = [TimedWord("Mr.", 3.0, 3.0, 0.5), TimedWord("and", 3.0, 3.0, 0.5), *_words("Mrs. Smith", 3.0)]
    assert second_pass._without_invented(short, []) == short
    heard = [TimedWord(t, 5.0, 5.0, 0.5) for t in "one two three".split()]
    assert second_pass._without_invented(heard, _words("one two three", 4.5)) == heard


def test_a_stop_before_the_end_gives_way_to_the_streaming_words_after_it() -> None:
    """Two speakers 0.05 s apart (tests/test_engine.py): the second pass stopped at "The
    contrary is true." and stretched "true." to the end of the audio; its decode again
    alone stopped there too, while the streaming pass had heard "Chapter 35" after it."""
    second_pass = SecondPass(recognizer=None, config=TransducerConfig())  # type: ignore[arg-type]
    true = TimedWord("true.", 1.73, 2.63, 0.8)
    streamed = [*_words("The contrary is", 0.37), TimedWord("true.", 1.75, 2.71, 0.8)]
    streamed += [TimedWord("Chapter", 2.71, 2.71, 0.6), TimedWord("35", 2.71, 3.67, 0.7)]
    filled = second_pass._streamed_gap_words(true, streamed, until=3.89)
    assert [w.text for w in filled or []] == ["true.", "Chapter", "35"]
    # one streaming word after it is too little to go by; the word unheard, nothing to go by
    assert second_pass._streamed_gap_words(true, streamed[:-1], until=3.89) is None
    assert second_pass._streamed_gap_words(TimedWord("false.", 1.73, 2.63, 0.8), streamed, until=3.89) is None
