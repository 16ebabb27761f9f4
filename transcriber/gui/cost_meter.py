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

        self.times: deque[float] = deque(maxlen=HISTORY)
        self.stage_ms: dict[str, deque[float]] = {}
        self.stage_curves: dict[str, pg.PlotDataItem] = {}
        self.rtf: deque[float] = deque(maxlen=HISTORY)
        self.rtf_curve = self.load_plot.plot(name="RTF", pen=pg.mkPen("#d62728", width=2))
        self.backlog_times: deque[float] = deque(maxlen=HISTORY)
        self.backlog: deque[float] = deque(maxlen=HISTORY)
        self.backlog_curve = self.load_plot.plot(name="backlog (s)", pen=pg.mkPen("#555555", width=1))
        self.encoder_blocks_run = 1.0
        self.last_rtf = 0.0
        self.last_backlog = 0.0
        self.recent: deque[CostSample] = deque(maxlen=SMOOTHING)
        self._show_summary()

    def add_sample(self, sample: CostSample) -> None:
        span = sample.audio_end - sample.audio_start
        if span <= 0:
            return
        self.times.append(sample.audio_end)
        self.recent.append(sample)
        # the audio the recent samples cover, once: with the separator on, both
        # channels send samples for the same seconds
        audio = max(s.audio_end for s in self.recent) - min(s.audio_start for s in self.recent)
        for stage in sample.stage_seconds.keys() | self.stage_ms.keys():
            if stage not in self.stage_ms:
                self.stage_ms[stage] = deque([0.0] * (len(self.times) - 1), maxlen=HISTORY)
                colour = STAGE_COLOURS.get(stage, "#000000")
                self.stage_curves[stage] = self.stage_plot.plot(name=stage, pen=pg.mkPen(colour, width=2))
            compute = sum(s.stage_seconds.get(stage, 0.0) for s in self.recent)
            self.stage_ms[stage].append(1000.0 * compute / audio)
        self.last_rtf = sum(sum(s.stage_seconds.values()) for s in self.recent) / audio
        self.rtf.append(self.last_rtf)
        self.encoder_blocks_run = sample.encoder_blocks_run
        if sample.encoder_layers_run:
            self._show_layers(sample.encoder_layers_run)
        times = list(self.times)
        for stage, curve in self.stage_curves.items():
            curve.setData(times, list(self.stage_ms[stage]))
        self.rtf_curve.setData(times, list(self.rtf))
        self._show_summary()

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
        for series in (self.times, self.rtf, self.backlog_times, self.backlog, self.recent, *self.stage_ms.values()):
            series.clear()
        for curve in (*self.stage_curves.values(), self.rtf_curve, self.backlog_curve):
            curve.setData([], [])
        self.last_rtf, self.last_backlog, self.encoder_blocks_run = 0.0, 0.0, 1.0
        self._show_summary()

    def _show_summary(self) -> None:
        self.summary.setText(
            f"<b>RTF</b> {self.last_rtf:.2f} &nbsp; <b>backlog</b> {self.last_backlog:.1f} s"
            f" &nbsp; <b>encoder blocks run</b> {100.0 * self.encoder_blocks_run:.0f} %"
        )
