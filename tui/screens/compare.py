"""Compare 2–6 runs: their loss curves overlaid on one step axis (each its colour, raw as a faint
band and smoothed as a bold line), and a table of outcome, steps, duration, billed time, final
loss and the inputs that differ. Live: a run still training moves on the chart as it goes."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from tui.base import ReplitrackScreen
from textual.widget import Widget
from textual.widgets import Static

from core.compare import LABELS, MAX_RUNS, comparison
from tui.format import duration, number, status_text
from tui.widgets.chart import MAX_POINTS, Series, plot, smooth, thin
from tui.widgets.footer import KeyFooter

__all__ = ["MAX_RUNS", "CompareScreen"]
COLOURS = ("dodger_blue1", "orange1", "green3", "magenta", "yellow", "cyan")


class OverlayChart(Widget):
    """Several runs' loss curves on one chart (core's series, drawn by tui.widgets.chart.plot)."""

    DEFAULT_CSS = "OverlayChart { height: 1fr; min-height: 8; }"
    revision: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runs: list[tuple[str, list[tuple[int, float]]]] = []  # (label, losses) in run order

    def set_runs(self, runs: list[tuple[str, list[tuple[int, float]]]]) -> None:
        self.runs = runs
        self.revision += 1

    def render(self) -> Text:
        limit = min(MAX_POINTS, max(200, self.size.width * 4))
        series: list[Series] = []
        for index, (label, losses) in enumerate(self.runs):
            points = thin(losses, limit)
            colour = COLOURS[index % len(COLOURS)]
            series.append(Series("", points, f"dim {colour}"))  # raw: a faint band, unlabelled
            if len(points) > 2:
                series.append(Series(label, smooth(points), f"bold {colour}"))
        return plot(series, self.size.width, self.size.height,
                    empty="no loss reported yet by any of these runs")


class CompareScreen(ReplitrackScreen[None]):
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: 1; padding: 0 1; margin-top: 1; }
    CompareScreen #compare-chart { height: 1fr; padding: 0 1; }
    CompareScreen #compare-table { height: auto; max-height: 12; padding: 0 1; margin-bottom: 1; }
    """
    BINDINGS = [Binding("escape", "back", "Back", id="compare.back")]

    def __init__(self, training_ids: list[str]) -> None:
        super().__init__()
        self.training_ids = list(training_ids)[:MAX_RUNS]
        self.tracked = False

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        yield OverlayChart(id="compare-chart")
        yield Static(id="compare-table")
        yield KeyFooter()

    def on_mount(self) -> None:
        app: Any = self.app
        app.trainings_changed.subscribe(self, self.on_changed)
        self.refresh_all()
        self.run_worker(self._track(), group="compare-track")

    async def _track(self) -> None:
        """Parse each run's stored log once (its tracker), off the UI loop; then draw the curves."""
        updater = self.app.service.updater
        for tid in self.training_ids:
            await asyncio.to_thread(updater.tracker, tid)
        self.tracked = True
        self.refresh_all()

    def on_changed(self, changed: frozenset[str]) -> None:
        if changed.intersection(self.training_ids) and self.is_current:
            self.refresh_all()

    def refresh_all(self) -> None:
        app: Any = self.app
        now: datetime = app.clock()
        views = [app.live_view(tid, tracked=self.tracked) or {"id": tid} for tid in self.training_ids]
        losses = {tid: list(app.service.updater.tracker(tid).state.losses) if self.tracked else []
                  for tid in self.training_ids}
        table = comparison(views, losses, now)
        running = sum(1 for run in table["runs"] if not run["terminal"])
        title = Text.assemble(("Compare ", "bold"), (f"{len(views)} runs", "bold"),
                              (f"   {running} still training: live" if running else "   all finished", "dim"),
                              ("   raw loss faint, smoothed bold", "dim"))
        self.query_one("#compare-title", Static).update(title)
        self.query_one(OverlayChart).set_runs([(run["label"], losses[str(run["id"])]) for run in table["runs"]])
        self.query_one("#compare-table", Static).update(runs_table(table))

    def action_back(self) -> None:
        self.app.pop_screen()


def runs_table(table: dict[str, Any]) -> Table:
    """The comparison as a Rich table: one row per run, its colour on its label."""
    grid = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for header in ("", "training", "model", "status", "reached", "duration", "billed", "final loss",
                   *table["differing_inputs"]):
        grid.add_column(header, no_wrap=True)
    for index, run in enumerate(table["runs"]):
        steps = f"{run['step'] or '–'}/{run['total_steps']}" if run.get("total_steps") else str(run.get("step") or "–")
        billed = duration(run["billed_seconds"]) if run.get("billed_seconds") is not None else "–"
        if run.get("estimated_cost") is not None:
            billed += f" ≈{run['estimated_cost']:,.2f} est."
        grid.add_row(
            Text(f"━ {LABELS[index]}", style=f"bold {COLOURS[index % len(COLOURS)]}"),
            Text(str(run["id"])), Text(str(run.get("destination") or "–")), status_text(run.get("status")),
            Text(steps), Text(duration(run.get("duration_seconds"))), Text(billed),
            Text(number(run.get("final_loss")), style="cyan"),
            *[Text(_cell(run["inputs"].get(name))) for name in table["differing_inputs"]],
        )
    return grid


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return value if isinstance(value, str) else json.dumps(value)
