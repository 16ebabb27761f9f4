"""The live transcript: one block per turn.

A block shows the speaker's name in their colour, the ``<sot>`` marker with the
start time when the turn opens, the committed words in normal text and the
partial hypothesis in grey, and the ``<eot>`` marker with the end time once the
turn has closed. While two people talk at once, the separator puts the second
voice on channel 2: those blocks are marked "ch 2", and a block that overlaps
another speaker's turn in time says with whom ("over Anna"); a channel-2 block
that overlaps is indented, so both voices read as what they were: said at the
same time. The view follows the live edge unless the reader has scrolled back.
It only renders the transcript that the workspace keeps.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from transcriber.transcript.builder import TranscriptBuilder
from transcriber.transcript.model import Turn

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
PARTIAL_COLOUR = "#8a8a8a"
HIGHLIGHT = "#ffe066"
CHANNEL_INDENT = 48  # pixels: overlapping channel-2 blocks stand to the right of channel 1's


def speaker_colour(speaker: str) -> str:
    number = int(speaker[1:]) if speaker[1:].isdigit() else sum(map(ord, speaker))
    return PALETTE[(number - 1) % len(PALETTE)]


def clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:02d}:{minutes:02d}:{rest:04.1f}"


class TurnBlock(QFrame):
    edit_requested = Signal(int)

    def __init__(self, turn_id: int):
        super().__init__()
        self.turn_id = turn_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(2)
        self.header = QLabel()
        self.body = QLabel()
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.footer = QLabel()
        for label in (self.header, self.body, self.footer):
            label.setTextFormat(Qt.TextFormat.RichText)
            layout.addWidget(label)
        self.plain_text = ""

    def show_turn(
        self, turn: Turn, name: str, partial: str, is_open: bool, highlight: str = "", over: tuple[str, ...] = ()
    ) -> None:
        """``over``: names of the speakers whose turns on the other channel this one overlaps."""
        colour = speaker_colour(turn.speaker)
        channel_mark = f' <span style="color:#555">ch {turn.channel + 1}</span>' if turn.channel else ""
        over_mark = f' <i style="color:#555">over {html.escape(", ".join(over))}</i>' if over else ""
        self.header.setText(
            f'<b style="color:{colour}">{html.escape(name)}</b>{channel_mark}'
            f" &nbsp;<code>&lt;sot&gt;</code> {clock(turn.start)}{over_mark}"
            + (' <i style="color:#888">(edited)</i>' if turn.edited_text is not None else "")
        )
        self.plain_text = turn.text
        text = _highlighted(turn.text, highlight)
        if partial:
            text += f' <span style="color:{PARTIAL_COLOUR}">{html.escape(partial)}</span>'
        self.body.setText(text or f'<span style="color:{PARTIAL_COLOUR}">…</span>')
        self.footer.setText("" if is_open else f"<code>&lt;eot&gt;</code> {clock(turn.end)}")
        self.footer.setVisible(not is_open)
        self.setStyleSheet(f"TurnBlock {{ border-left: 4px solid {colour}; }}")
        # only speech said over someone stands aside; after an overlap the newcomer's
        # channel may carry the conversation on, and that reads as any other turn
        self.setContentsMargins(CHANNEL_INDENT if turn.channel and over else 0, 0, 0, 0)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.edit_requested.emit(self.turn_id)
        super().mouseDoubleClickEvent(event)


def overlapping_speakers(turns: list[Turn]) -> dict[int, list[str]]:
    """Turn id -> the other speakers whose turns on another channel overlap it in time."""
    found: dict[int, list[str]] = {}
    for i, turn in enumerate(turns):  # sorted by start
        for later in turns[i + 1 :]:
            if later.start >= turn.end:
                break
            if later.channel != turn.channel and later.speaker != turn.speaker:
                if later.speaker not in found.setdefault(turn.turn_id, []):
                    found[turn.turn_id].append(later.speaker)
                if turn.speaker not in found.setdefault(later.turn_id, []):
                    found[later.turn_id].append(turn.speaker)
    return found


def _highlighted(text: str, needle: str) -> str:
    if not needle:
        return html.escape(text)
    lower, low_needle = text.lower(), needle.lower()
    parts, position = [], 0
    while (found := lower.find(low_needle, position)) >= 0:
        parts.append(html.escape(text[position:found]))
        parts.append(f'<span style="background:{HIGHLIGHT}">{html.escape(text[found : found + len(needle)])}</span>')
        position = found + len(needle)
    parts.append(html.escape(text[position:]))
    return "".join(parts)


class TranscriptView(QScrollArea):
    edit_requested = Signal(int)  # turn id

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.container = QWidget()
        self.column = QVBoxLayout(self.container)
        self.column.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.column.setSpacing(6)
        self.setWidget(self.container)
        self.blocks: dict[int, TurnBlock] = {}
        self.order: list[int] = []
        self.search_text = ""
        # follow the live edge: when the content grows (the range changes after the
        # layout, not when the blocks are added) jump to the end, unless the reader
        # has scrolled away from it
        self.following = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)

    # -- rendering ---------------------------------------------------------------------------
    def render(self, builder: TranscriptBuilder, turn_ids: set[int] | None = None) -> None:
        """Bring the blocks in line with the transcript; only ``turn_ids`` are redrawn
        when given (the rest did not change), all otherwise."""
        transcript = builder.transcript
        turns = transcript.sorted_turns()
        overlapping = overlapping_speakers(turns)
        present = {turn.turn_id for turn in turns}
        for turn_id in [t for t in self.blocks if t not in present]:  # discarded turns
            self.blocks.pop(turn_id).deleteLater()
        for turn in turns:
            if turn_ids is not None and turn.turn_id not in turn_ids and turn.turn_id in self.blocks:
                continue
            block = self.blocks.get(turn.turn_id)
            if block is None:
                block = self.blocks[turn.turn_id] = TurnBlock(turn.turn_id)
                block.edit_requested.connect(self.edit_requested)
            block.show_turn(
                turn,
                transcript.display_name(turn.speaker),
                builder.partial_text(turn.turn_id),
                builder.is_open(turn.turn_id),
                self.search_text,
                tuple(transcript.display_name(s) for s in overlapping.get(turn.turn_id, ())),
            )
        order = [turn.turn_id for turn in turns]
        if order != self.order:
            self._arrange(order)

    def _arrange(self, order: list[int]) -> None:
        if order[: len(self.order)] == self.order:  # new turns at the end: the usual case
            added = order[len(self.order) :]
        else:
            for turn_id in order:
                self.column.removeWidget(self.blocks[turn_id])
            added = order
        for turn_id in added:
            self.column.addWidget(self.blocks[turn_id])
            # now, not when the event loop next runs (a layout shows a widget added to
            # a visible parent only then): a turn rendered last is visible at once
            self.blocks[turn_id].show()
        self.order = order

    def _scrolled(self, value: int) -> None:
        self.following = value >= self.verticalScrollBar().maximum() - 24

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self.following:
            self.verticalScrollBar().setValue(maximum)

    def scroll_to_live_edge(self) -> None:
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
        self.following = True

    def clear(self) -> None:
        for block in self.blocks.values():
            block.deleteLater()
        self.blocks, self.order = {}, []
        self.following = True

    # -- search ------------------------------------------------------------------------------
    def matches(self, needle: str) -> list[int]:
        needle = needle.lower()
        return [turn_id for turn_id in self.order if needle and needle in self.blocks[turn_id].plain_text.lower()]

    def show_block(self, turn_id: int) -> None:
        self.ensureWidgetVisible(self.blocks[turn_id])
