"""One training, live: big progress bar, stage timeline, ETA/elapsed/rate, loss chart, live log,
inputs, output (copyable) or the error and traceback tail."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from core.models import Status
from core.text import terminal_safe
from tui.base import ReplitrackScreen
from tui.format import duration, elapsed_seconds, eta_text, number, rate, safe, status_text
from tui.widgets.chart import LossChart
from tui.widgets.live_log import TAIL_LINES, LiveLog
from tui.widgets.log_file import read_tail
from tui.widgets.progress import BigProgress
from tui.widgets.stages import StageTimeline
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine

TRACEBACK_TAIL = 12  # lines of the traceback shown when a training failed
NARROW, SHORT, TINY = 110, 34, 22  # terminal sizes where the layout gives the log room (see app.tcss)
NO_LOSS = "this training's log reported no loss values"


def stats_table(view: dict[str, Any], now: datetime, elapsed: float | None = None) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", width=9)
    table.add_column()
    table.add_row("ETA", Text(eta_text(view, now), style="bold"))
    table.add_row("Elapsed", duration(elapsed if elapsed is not None else elapsed_seconds(view, now)))
    table.add_row("Rate", rate(view.get("rate")))
    table.add_row("Loss", Text(number(view.get("loss")), style="cyan"))
    table.add_row("LR", Text(number(view.get("lr")), style="yellow"))
    table.add_row("Trainer", safe(view.get("trainer")))
    last = view.get("completed_at") or view.get("updated_at")  # a finished one's last news is its end
    table.add_row("Completed" if view.get("completed_at") else "Updated",
                  safe((last or "–").replace("T", " ")[5:19] if last else "–"))  # fits a narrow panel
    return table


def inputs_text(view: dict[str, Any]) -> Text:
    text = Text()
    items = sorted((view.get("input") or {}).items())
    if not items:
        return Text("no inputs recorded", style="dim")
    for key, value in items:
        shown = value if isinstance(value, str) else json.dumps(value)
        text.append(f"{key}: ", style="dim")
        text.append(terminal_safe(str(shown)[:200], one_line=True) + "\n")
    text.rstrip()
    return text


def outcome_text(view: dict[str, Any], traceback: str | None, error_lines: list[str]) -> Text:
    status = str(view.get("status"))
    text = Text()
    if status == "succeeded":
        text.append("Output version  ", style="bold green")
        text.append(str(view.get("output_version") or "–") + "\n")
        text.append("Weights         ", style="bold green")
        text.append(str(view.get("output_weights") or "–") + "\n")
        text.append("c copies the version · w copies the weights URL", style="dim")
    elif status == "failed":
        text.append("Error  ", style="bold red")
        text.append(terminal_safe(view.get("error") or "no error message from Replicate") + "\n")
        tail = (traceback or "\n".join(error_lines)).splitlines()[-TRACEBACK_TAIL:]
        if tail:
            text.append("Traceback (tail)\n", style="bold red")
            text.append(terminal_safe("\n".join(tail)), style="red")
    elif status in ("canceled", "aborted"):
        text.append(f"This training was {status}.", style="magenta")
    from core.billing import billed_text

    if text.plain and (billed := billed_text(view)):
        text.append(f"\n{billed}", style="dim")  # metrics.predict_time (+ an estimate from your prices)
    return text


class DetailScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "app.back_to_models", "Back", id="detail.back"),
        Binding("f", "toggle_follow", "Follow", id="detail.follow"),
        Binding("s", "save_log", "Save log", id="detail.save_log"),
        Binding("i", "copy_id", "Copy id", id="detail.copy_id"),
        Binding("h", "history", "Full log / search", id="detail.history"),
        Binding("o", "open_web", "Web", id="detail.web"),
        Binding("e", "app.open_events", "Events", id="detail.events"),
        Binding("c", "copy_version", "Copy version", id="detail.copy_version"),
        Binding("w", "copy_weights", "Copy weights", id="detail.copy_weights"),
        Binding("r", "retry", "Retry", id="detail.retry"),
        Binding("x", "cancel", "Cancel", id="detail.cancel"),
        Binding("t", "try_model", "Try it", id="detail.try"),
    ]

    def __init__(self, training_id: str) -> None:
        super().__init__()
        self.training_id = training_id
        self.view: dict[str, Any] = {}
        self.tracked = False  # the tracker (parsed log: loss, lr, traceback) is ready
        self._shown: dict[str, str] = {}  # selector → text last shown there
        self._stale = False
        self._unsubscribe_log: Callable[[], None] | None = None
        self._elapsed_floor = 0.0  # the longest elapsed shown: it never goes backwards
        self._actions: tuple[bool, ...] = ()  # which actions applied when the footer was drawn

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="detail-title")
        yield BigProgress(id="detail-progress")
        with Horizontal(id="detail-body"):
            with VerticalScroll(id="detail-side"):
                # The outcome (output or error) comes first: once a training ended it is the news.
                yield Static("Outcome", classes="section", id="detail-outcome-title")
                yield Static(id="detail-outcome")
                yield Static("Progress", classes="section", id="detail-stats-title")
                yield Static(id="detail-stats")
                yield Static("Stages", classes="section")
                yield StageTimeline(id="detail-stages")
                yield Static("Inputs", classes="section")
                yield Static(id="detail-inputs")
            with Vertical(id="detail-main"):
                # A failure's error and traceback get the main column's width, above the curve.
                with VerticalScroll(id="detail-error", classes="hidden"):
                    yield Static(id="detail-error-text")
                yield LossChart(id="detail-chart")
                yield Static(id="detail-log-title", classes="section")
                yield LiveLog(id="detail-log")
        yield KeyFooter()

    def on_mount(self) -> None:
        app = self.app
        log_widget = self.query_one(LiveLog)
        # Show the tail of the stored log first (read from the file's end: the log may be
        # 100 MB), then everything the updater adds after it.
        log_widget.feed(read_tail(app.store.log_path(self.training_id), TAIL_LINES))
        log_widget.flush()
        self._unsubscribe_log = app.subscribe_log(self.training_id, log_widget.feed)
        app.trainings_changed.subscribe(self, self.on_changed)
        app.ticked.subscribe(self, self.on_tick)
        self.refresh_all()
        # Whether lines are wider than the view is known once they are laid out: say so then.
        self.watch(log_widget, "virtual_size", lambda _: self.update_log_title(), init=False)
        log_widget.focus()
        self.call_after_refresh(log_widget.scroll_end, animate=False, x_axis=False)
        self.run_worker(self._track(), group="detail-track")

    async def _track(self) -> None:
        """Build the training's tracker from its stored log without holding the UI: a long log is
        parsed a piece at a time; an update arriving meanwhile is never lost (Updater.prepare)."""
        updater = self.app.service.updater
        await updater.prepare(self.training_id)  # a piece at a time, on the event loop (never a thread)
        updater.tracker(self.training_id)
        self.tracked = True
        self.refresh_all()
        app: Any = self.app
        if app.store.log_length(self.training_id) == 0 and app.service.client.token:
            # Imported trainings come without their log (Replicate's list leaves it out):
            # fetch this one in full; the log, the curve and the outcome fill in as it lands.
            await app.guarded(app.service.refresh(self.training_id, source="sync"))

    def on_unmount(self) -> None:
        if self._unsubscribe_log:
            self._unsubscribe_log()

    def refresh_all(self) -> None:
        if not self.query(LiveLog):  # being removed (switched away while an update was queued)
            return
        app = self.app
        view = app.live_view(self.training_id, tracked=self.tracked) or {"id": self.training_id}
        self.view = view
        now = app.clock()
        title = Text()
        title.append_text(status_text(view.get("status")))
        title.append("  ")
        title.append(terminal_safe(view.get("destination") or "(destination unknown)", one_line=True), style="bold")
        title.append(f"   {self.training_id}", style="dim")
        # Statics of fixed height update without a layout pass (a layout per webhook would cost
        # more than everything else on this screen); the others only when their text changed.
        self.query_one("#detail-title", Static).update(title, layout=False)
        self.query_one(BigProgress).show(view)
        self.query_one("#detail-stats", Static).update(stats_table(view, now, self._elapsed(view, now)), layout=False)
        self.query_one(StageTimeline).show(view, now)
        self._update_if_changed("#detail-inputs", inputs_text(view))
        if self.tracked:
            state = app.service.updater.tracker(self.training_id).state
            chart = self.query_one(LossChart)
            if Status.parse(view.get("status")).terminal and chart.empty_message != NO_LOSS:
                chart.empty_message = NO_LOSS
                chart.refresh()
            chart.set_data(state.losses, state.lrs)
            chart.set_class(not state.losses, "-empty")  # no curve yet: its message, not 13 empty rows
            outcome = outcome_text(view, state.traceback, state.error_lines)
        else:
            outcome = outcome_text(view, None, [])
        failed = view.get("status") == "failed"
        if self._update_if_changed("#detail-error-text" if failed else "#detail-outcome", outcome):
            side = bool(outcome.plain) and not failed
            self.query_one("#detail-outcome", Static).display = side
            self.query_one("#detail-outcome-title", Static).display = side
            self.query_one("#detail-error").set_class(not failed, "hidden")
            self.set_class(failed, "-failed")
        self.update_log_title()
        actions = (not Status.parse(view.get("status")).terminal, bool(view.get("output_version")),
                   bool(view.get("output_weights")))
        if actions != self._actions:
            self._actions = actions
            self.refresh_bindings()  # the footer shows only what applies now

    def _update_if_changed(self, selector: str, text: Text) -> bool:
        if self._shown.get(selector) == text.plain:
            return False
        self._shown[selector] = text.plain
        self.query_one(selector, Static).update(text)
        return True

    def _elapsed(self, view: dict[str, Any], now: datetime) -> float | None:
        # While running, elapsed counts on our clock; at the end it is Replicate's completed_at
        # minus started_at, which a clock ahead of Replicate's would put earlier than what was
        # already shown. Never show time going backwards on this screen.
        seconds = elapsed_seconds(view, now)
        if seconds is None:
            return None
        self._elapsed_floor = max(self._elapsed_floor, seconds)
        return self._elapsed_floor

    def update_log_title(self) -> None:
        log_widget = self.query_one(LiveLog)
        running = not Status.parse(self.view.get("status")).terminal
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("Log ", style="bold")
        if running:
            title.append("(following, f pauses)" if log_widget.following else "(paused, f follows)", style="dim")
        if log_widget.cut_lines:
            title.append("  ← → longer lines", style="bold yellow")
        title.append("  · h: all, / search", style="dim")
        if self._shown.get("#detail-log-title") != title.plain:
            self._shown["#detail-log-title"] = title.plain
            self.query_one("#detail-log-title", Static).update(title, layout=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the actions that apply to this training now (the footer shows just those)."""
        status = Status.parse(self.view.get("status")) if self.view.get("status") else None
        running = status is not None and not status.terminal
        if action in ("cancel", "toggle_follow"):
            return running
        if action == "retry":
            return status is not None and status.terminal
        if action in ("copy_version", "try_model"):  # a try runs the trained version
            return bool(self.view.get("output_version"))
        if action == "copy_weights":
            return bool(self.view.get("output_weights"))
        return True

    def on_resize(self) -> None:
        # Small terminals: a narrower side panel; the chart shrinks, then hides, so that the
        # live log keeps at least LOG_MIN_ROWS rows.
        self.set_class(self.size.width < NARROW, "-narrow")
        self.set_class(self.size.height < SHORT, "-short")
        self.set_class(self.size.height < TINY, "-tiny")

    def on_changed(self, changed: frozenset[str]) -> None:
        if self.training_id in changed:
            if self.is_current:
                self.refresh_all()
            else:
                self._stale = True  # under the full log: catch up when back

    def on_screen_resume(self) -> None:
        self.query_one(StatusLine).refresh()
        if self._stale:
            self._stale = False
            self.refresh_all()

    def on_tick(self, now: datetime) -> None:
        if self.is_current and not Status.parse(self.view.get("status")).terminal:
            self.query_one("#detail-stats", Static).update(
                stats_table(self.view, now, self._elapsed(self.view, now)), layout=False)
            self.query_one(StageTimeline).show(self.view, now)

    # ----- actions -----------------------------------------------------------------------------
    def action_toggle_follow(self) -> None:
        log_widget = self.query_one(LiveLog)
        log_widget.set_following(not log_widget.following)
        self.update_log_title()

    def action_copy_id(self) -> None:
        self.app.copy("training id", self.training_id)

    def action_save_log(self) -> None:
        """Save the whole stored log to a file in the working directory; say where."""
        app: Any = self.app
        name = str(self.view.get("destination") or "training").replace("/", "-")
        target = Path.cwd() / f"{name}-{self.training_id}.log"

        async def save() -> None:
            source = app.store.log_path(self.training_id)
            try:
                await asyncio.to_thread(shutil.copyfile, source, target)
            except FileNotFoundError:
                app.notify("No log stored for this training yet: nothing to save.", severity="warning", markup=False)
                return
            except OSError as error:
                try:
                    target.unlink()
                except OSError:
                    pass
                app.notify(f"Could not save the log to {target}: {error.strerror or error}. Free some space or "
                           "run replitrack from a writable directory.", title="Save log", severity="error",
                           markup=False, timeout=12)
                return
            app.notify(f"Saved the whole log ({target.stat().st_size:,} bytes) to {target}", title="Save log",
                       markup=False, timeout=10)

        self.run_worker(save(), group="detail-save", exit_on_error=False)

    def action_history(self) -> None:
        from tui.screens.log_history import LogHistoryScreen  # loaded when first shown, for start-up time

        self.app.push_screen(LogHistoryScreen(self.training_id))

    def action_open_web(self) -> None:
        self.app.open_training_page(self.training_id)

    def action_copy_version(self) -> None:
        self.app.copy("output version", self.view.get("output_version"))

    def action_copy_weights(self) -> None:
        self.app.copy("weights URL", self.view.get("output_weights"))

    def action_retry(self) -> None:
        self.app.retry(self.training_id)

    def action_cancel(self) -> None:
        self.app.cancel(self.training_id)

    def action_try_model(self) -> None:
        self.app.open_try(self.training_id)

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Follow log", "Pause or resume following the log", self.action_toggle_follow)
        yield SystemCommand("Full log and search", "Scroll back through the whole log", self.action_history)
        yield SystemCommand("Save log", "Save the whole log to a file in the working directory", self.action_save_log)
        yield SystemCommand("Copy training id", "Copy this training's id", self.action_copy_id)
        yield SystemCommand("Open on Replicate", "Open this training's web page", self.action_open_web)
        yield SystemCommand("Copy output version", "Copy owner/name:version", self.action_copy_version)
        yield SystemCommand("Copy weights URL", "Copy the weights URL", self.action_copy_weights)
        yield SystemCommand("Retry training", "Start it again with the same inputs (asks first)", self.action_retry)
        yield SystemCommand("Cancel training", "Cancel it (asks first)", self.action_cancel)
