"""The compute-cost meter: what recognition costs, live.

Plotted against the audio clock: milliseconds of computation per second of
audio for each engine stage (from the engine's ``CostSample`` events), the
real-time factor (both over the last few seconds), and the backlog (seconds of audio recorded but not yet
recognised). The fraction of encoder blocks evaluated is the engine's own count
(``CostSample.encoder_blocks_run``), shown as it comes, and per layer (bars for
self-attention and MLP, ``CostSample.encoder_layers_run``) from the arbitrators'
decisions. A slider picks the compute budget among the operating points offered
(``set_budget_points``); the meter only reports the choice (``budgetChanged``).
"""

from __future__ import annotations

import bisect
from collections import deque

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from transcriber.engine.events import CostSample

STAGE_COLOURS = {
    "vad": "#7f7f7f",
    "embedding": "#2ca02c",
    "encoder": "#1f77b4",
    "decoder": "#ff7f0e",
    "clustering": "#9467bd",
}
HISTORY = 600  # points kept per curve
# each point is the cost over the latest samples (about 5 s of audio): one sample alone
# jumps (the end-of-stream work lands in a short last sample), a few together do not
SMOOTHING = 5


class CostMeter(QWidget):
    budgetChanged = Signal(float)  # noqa: N815 - Qt's naming

    def __init__(self) -> None:
        super().__init__()
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel()
        layout.addWidget(self.summary)

        budget_row = QHBoxLayout()
        self.budget_slider = QSlider(Qt.Orientation.Horizontal)
        self.budget_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.budget_slider.setPageStep(1)
        self.budget_slider.setToolTip("encoder compute budget: operating points of the trained arbitrators")
        self.budget_label = QLabel()
        budget_row.addWidget(QLabel("encoder budget"))
        budget_row.addWidget(self.budget_slider, stretch=1)
        budget_row.addWidget(self.budget_label)
        layout.addLayout(budget_row)
        self.budget_points: list[tuple[float, str]] = [(1.0, "full encoder")]
        self.budget_slider.valueChanged.connect(self._budget_moved)
        self.set_budget_points(self.budget_points, 1.0)

        self.stage_plot = pg.PlotWidget(title="ms of compute per s of audio")
        self.stage_plot.addLegend(offset=(5, 5))
        self.stage_plot.setLabel("bottom", "audio time", units="s")
        layout.addWidget(self.stage_plot, stretch=2)
        self.load_plot = pg.PlotWidget(title="real-time factor and backlog")
        self.load_plot.addLegend(offset=(5, 5))
        self.load_plot.setLabel("bottom", "audio time", units="s")
        layout.addWidget(self.load_plot, stretch=1)
        self.layer_plot = pg.PlotWidget(title="encoder frames run per layer: attention | MLP")
        self.layer_plot.setYRange(0.0, 1.0)
        self.layer_plot.setLabel("bottom", "layer")
        self.layer_plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "50 %"), (1.0, "100 %")]])
        self.attention_bars = pg.BarGraphItem(x=[], height=[], width=0.35, brush="#1f77b4")
        self.mlp_bars = pg.BarGraphItem(x=[], height=[], width=0.35, brush="#ff7f0e")
        self.layer_plot.addItem(self.attention_bars)
        self.layer_plot.addItem(self.mlp_bars)
        layout.addWidget(self.layer_plot, stretch=1)
        self.layers_run: tuple[tuple[float, float], ...] = ()

        # the samples in audio-time order (they may come out of it), and the points
        # plotted from them: their times, each stage's milliseconds per second of
        # audio, the real-time factor
        self.samples: list[CostSample] = []
        self.times: list[float] = []
        self.points: list[dict[str, float]] = []  # seconds of compute per second of audio, per stage
        self.stage_ms: dict[str, list[float]] = {}
        self.stage_curves: dict[str, pg.PlotDataItem] = {}
        self.rtf: list[float] = []
        self.rtf_curve = self.load_plot.plot(name="RTF", pen=pg.mkPen("#d62728", width=2))
        self.backlog_times: deque[float] = deque(maxlen=HISTORY)
        self.backlog: deque[float] = deque(maxlen=HISTORY)
        self.backlog_curve = self.load_plot.plot(name="backlog (s)", pen=pg.mkPen("#555555", width=1))
        self.encoder_blocks_run = 1.0
        self.last_rtf = 0.0
        self.last_backlog = 0.0
        self._show_summary()

    def add_sample(self, sample: CostSample) -> None:
        if sample.audio_end - sample.audio_start <= 0:
            return
        # in audio-time order: a file in pieces (engine/pieces.py) reports the later
        # pieces' seconds, and the first piece's end of stream, after the first's
        at = bisect.bisect_right(self.times, sample.audio_end)
        self.samples.insert(at, sample)
        self.times.insert(at, sample.audio_end)
        self.points.insert(at, {})
        changed = set(range(at, at + SMOOTHING))  # the points whose samples changed
        if len(self.samples) > HISTORY:  # the earliest audio goes
            del self.samples[0], self.times[0], self.points[0]
            at = max(0, at - 1)
            changed = {index - 1 for index in changed} | set(range(SMOOTHING))
        for index in sorted(changed):
            if 0 <= index < len(self.samples):
                self.points[index] = self._point(index)
        for stage in sorted(sample.stage_seconds.keys() - self.stage_curves.keys()):
            colour = STAGE_COLOURS.get(stage, "#000000")
            self.stage_curves[stage] = self.stage_plot.plot(name=stage, pen=pg.mkPen(colour, width=2))
        self.stage_ms = {stage: [1000.0 * p.get(stage, 0.0) for p in self.points] for stage in self.stage_curves}
        self.rtf = [sum(p.values()) for p in self.points]
        self.last_rtf = self.rtf[at]
        self.encoder_blocks_run = sample.encoder_blocks_run
        if sample.encoder_layers_run:
            self._show_layers(sample.encoder_layers_run)
        for stage, curve in self.stage_curves.items():
            curve.setData(self.times, self.stage_ms[stage])
        self.rtf_curve.setData(self.times, self.rtf)
        self._show_summary()

    def _point(self, index: int) -> dict[str, float]:
        """Seconds of compute per second of audio, per stage, over the samples up to
        ``index`` (``SMOOTHING`` of them), each second of audio counted once: with the
        separator on, both channels report the same seconds."""
        recent = self.samples[max(0, index - SMOOTHING + 1) : index + 1]
        audio = max(s.audio_end for s in recent) - min(s.audio_start for s in recent)
        compute: dict[str, float] = {}
        for s in recent:
            for stage, seconds in s.stage_seconds.items():
                compute[stage] = compute.get(stage, 0.0) + seconds
        return {stage: seconds / audio for stage, seconds in compute.items()}

    def _show_layers(self, layers: tuple[tuple[float, float], ...]) -> None:
        self.layers_run = layers
        positions = list(range(1, len(layers) + 1))
        self.layer_plot.getAxis("bottom").setTicks([[(p, str(p)) for p in positions]])  # whole layers only
        self.attention_bars.setOpts(x=[p - 0.2 for p in positions], height=[a for a, _ in layers])
        self.mlp_bars.setOpts(x=[p + 0.2 for p in positions], height=[m for _, m in layers])

    def set_budget_points(self, points: list[tuple[float, str]], current: float) -> None:
        """The budgets the slider offers, (fraction of encoder FLOPs, label), most first."""
        self.budget_points = sorted(points, reverse=True)
        self.budget_slider.blockSignals(True)
        self.budget_slider.setRange(0, len(self.budget_points) - 1)
        nearest = min(range(len(self.budget_points)), key=lambda i: abs(self.budget_points[i][0] - current))
        self.budget_slider.setValue(nearest)
        self.budget_slider.setEnabled(len(self.budget_points) > 1)
        self.budget_slider.blockSignals(False)
        self._show_budget(nearest)

    def _budget_moved(self, index: int) -> None:
        self._show_budget(index)
        self.budgetChanged.emit(self.budget_points[index][0])

    def _show_budget(self, index: int) -> None:
        fraction, label = self.budget_points[index]
        self.budget_label.setText(f"{100 * fraction:.0f} % ({label})")

    def add_backlog(self, audio_time: float, backlog_seconds: float) -> None:
        self.last_backlog = backlog_seconds
        self.backlog_times.append(audio_time)
        self.backlog.append(backlog_seconds)
        self.backlog_curve.setData(list(self.backlog_times), list(self.backlog))
        self._show_summary()

    def reset(self) -> None:
        for series in (self.samples, self.times, self.points, self.rtf, self.backlog_times, self.backlog):
            series.clear()
        self.stage_ms = {}
        for curve in (*self.stage_curves.values(), self.rtf_curve, self.backlog_curve):
            curve.setData([], [])
        self.last_rtf, self.last_backlog, self.encoder_blocks_run = 0.0, 0.0, 1.0
        self._show_summary()

    def _show_summary(self) -> None:
        self.summary.setText(
            f"<b>RTF</b> {self.last_rtf:.2f} &nbsp; <b>backlog</b> {self.last_backlog:.1f} s"
            f" &nbsp; <b>encoder blocks run</b> {100.0 * self.encoder_blocks_run:.0f} %"
        )
