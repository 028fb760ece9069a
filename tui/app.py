"""The replitrack app: one factory for the CLI, the demo, the tests and the screenshot script.

Updates flow one way. Webhooks (through the listener) and polls both go through core's Updater;
the app subscribes to it, keeps the latest view of each training in memory, and posts itself a
`TrainingsChanged` message that can replace its predecessor, so a burst of updates becomes one
repaint. Screens hear about it through the `trainings_changed` signal. Nothing reads the store on
a timer; the once-a-second tick only redraws elapsed/ETA text from what is already in memory.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.signal import Signal
from textual.worker import Worker, WorkerState

from core.errors import NetworkError, ReplitrackError, ServerError
from core.models import replicate_web_url, utcnow
from core.service import TrainingService
from core.text import terminal_safe
from core.updates import UpdateResult
from core.views import status_view
from tui.hooks import run_hook
from tui.widgets.status_line import Connection

log = logging.getLogger(__name__)
ERROR_REPEAT = 60.0  # seconds before the same kind of polling error is shown again


class TrainingsChanged(Message):
    """Some trainings changed (the app keeps which). A newer one supersedes a queued one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TrainingsChanged)


class ReplitrackApp(App[int]):
    TITLE = "replitrack"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
    ]

    def __init__(
        self,
        service: TrainingService,
        *,
        listener: Any = None,
        simulator: Any = None,
        clock: Callable[[], datetime] = utcnow,
        poll: bool = True,
        mode: str = "live",
        sign_in: bool = False,
        import_on_start: bool = False,
        on_complete: str | None = None,
        on_fail: str | None = None,
        tick: bool = True,
        start_listener: bool = False,
        boot: Callable[[ReplitrackApp], Awaitable[None]] | None = None,
        listener_factory: Callable[[TrainingService], Any] | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.store = service.store
        self.listener = listener
        self.simulator = simulator
        self.clock = clock
        self.poll = poll
        self.needs_sign_in = sign_in
        self.import_on_start = import_on_start
        self.hooks = {"succeeded": on_complete, "failed": on_fail}
        self.tick_enabled = tick
        self.start_listener = start_listener
        self.boot = boot  # slow set-up (the demo's simulator) run after the first paint
        self.listener_factory = listener_factory  # builds the listener after the first paint
        self.connection = Connection(mode=mode, signed_in=bool(service.client.token))
        self.records: dict[str, dict[str, Any]] = {}  # training id → the view the screens show
        self.log_sinks: dict[str, list[Callable[[str], None]]] = {}
        self.trainings_changed: Signal[frozenset[str]] = Signal(self, "trainings-changed")
        self.connection_changed: Signal[None] = Signal(self, "connection-changed")
        self.ticked: Signal[datetime] = Signal(self, "tick")
        self.hook_tasks: set[asyncio.Task[int]] = set()
        self._dirty: set[str] = set()
        self._pending_logs: dict[str, list[str]] = {}
        self._ended: list[str] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._last_error: str | None = None
        self._told: dict[str, float] = {}  # error kind → when it was last shown

    # ----- start and stop ----------------------------------------------------------------------
    def on_mount(self) -> None:
        # The stored records carry every field the list shows; the live view (status_view with
        # the tracker's progress) is built per training when an update or the detail needs it.
        self.records = {record["id"]: record for record in self.store.trainings()}
        self._unsubscribe = self.service.updater.subscribe(self._on_update)
        for notice in self.store.notices:
            self.notify(notice, title="Store", severity="warning", markup=False, timeout=15)
        self._refresh_listener_state()
        if self.tick_enabled:
            self.set_interval(1.0, self._tick)
        from tui.screens.models import ModelsScreen

        # Installed, so that switching to a detail keeps it (rows, cursor, sort) without keeping
        # it underneath: a screen underneath is still composited, and each of its updates would
        # repaint the whole detail screen.
        self.install_screen(ModelsScreen(), name="models")
        self.push_screen("models")
        # Everything else waits for the first paint: the boot and the listener import modules
        # (aiohttp, the simulator) and would hold the window blank meanwhile.
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        # What exists now (modules, Textual's machinery, the first screen) lives as long as the
        # app: move it out of the garbage collector's way, so that a full collection, which
        # otherwise walks all of it, does not stall a frame (measured: tens of ms each). Collect
        # first, so that no garbage is frozen with it.
        gc.collect()
        gc.freeze()
        if self.boot is not None:
            self.run_worker(self._boot(), name="boot", group="boot", exit_on_error=False)
        elif self.needs_sign_in:
            self.sign_in(then=self.start_background)
        else:
            self.start_background()

    async def _boot(self) -> None:
        """Run the slow set-up after the first paint, then start as usual."""
        assert self.boot is not None
        self.connection.importing = "starting…"
        self.connection.listener_error = "starting"
        self.connection_changed.publish(None)
        try:
            await self.boot(self)
        except ReplitrackError as error:
            self.report(error)
        finally:
            self.connection.importing = None
            self._refresh_listener_state()
        if self.needs_sign_in:
            self.sign_in(then=self.start_background)
        else:
            self.start_background()

    def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    def start_background(self) -> None:
        """Polling (and the first import) once there is a token to use."""
        self.needs_sign_in = False
        self.connection.signed_in = bool(self.service.client.token)
        if self.start_listener and (self.listener is not None or self.listener_factory is not None):
            self.start_listener = False
            self.run_worker(self._start_listener(), name="listener", group="listener", exit_on_error=False)
        if self.import_on_start and not self.records:
            self.run_worker(self.import_all(), name="import", group="import", exclusive=True, exit_on_error=False)
        if self.poll:
            self.run_worker(self.service.poll_forever(on_error=self._poll_error), name="poller",
                            group="poller", exclusive=True, exit_on_error=False)
        self.run_worker(self._load_account(), group="account", exit_on_error=False)

    async def _start_listener(self) -> None:
        try:
            if self.listener is None and self.listener_factory is not None:
                self.listener = self.listener_factory(self.service)  # imports aiohttp: after paint
            await self.listener.start()
        except ReplitrackError as error:
            self.connection.listener_error = "listener not running"
            self.report(error)
        self._refresh_listener_state()

    async def _load_account(self) -> None:
        if self.connection.mode != "live":
            return
        try:
            account = await self.service.client.account()
        except ReplitrackError:
            return  # the poller reports connection problems; the name is only decoration
        self.connection.account = str(account.get("username") or "") or None
        self.connection_changed.publish(None)

    def sign_in(self, then: Callable[[], None] | None = None) -> None:
        from tui.screens.sign_in import SignInScreen

        def done(ok: bool | None) -> None:
            if ok and then:
                then()
            elif not ok:
                self.notify("Not signed in: nothing can be fetched from Replicate. Press ctrl+p → "
                            "Sign in to try again.", severity="warning", markup=False)

        self.push_screen(SignInScreen(), done)

    # ----- the stream of updates ---------------------------------------------------------------
    def _on_update(self, result: UpdateResult) -> None:
        """Called by the Updater for every applied update (webhook, poll, sync, import, ...).

        It may run in an aiohttp handler's task, outside the app's context (no timers, no
        widgets there): it only records what changed and posts one message; the handler, in the
        app's context, does the rest.
        """
        if result.source == "webhook":
            self.connection.webhooks += 1
        if result.source in ("poll", "sync", "import", "webhook"):
            self.connection.last_ok = self.clock()
            if not self.connection.online and result.source != "webhook":
                self.connection.online, self._last_error = True, None
        if not result.accepted or result.record is None:
            return
        tid = result.training_id
        self.records[tid] = status_view(result.record, result.progress, now=self.clock())
        if result.new_log and tid in self.log_sinks:
            self._pending_logs.setdefault(tid, []).append(result.new_log)
        # became_terminal means an ending seen as it happened (core decides): importing 300
        # finished trainings raises no toast and runs no hook.
        if result.became_terminal:
            self._ended.append(tid)
        self._dirty.add(tid)
        self.post_message(TrainingsChanged())

    def on_trainings_changed(self, _: TrainingsChanged) -> None:
        logs, self._pending_logs = self._pending_logs, {}
        for tid, chunks in logs.items():
            text = "".join(chunks)
            for sink in list(self.log_sinks.get(tid, ())):
                sink(text)
        if self._dirty:
            changed, self._dirty = frozenset(self._dirty), set()
            self.trainings_changed.publish(changed)
            self.connection_changed.publish(None)
        ended, self._ended = self._ended, []
        for tid in ended:
            self._announce_end(self.records[tid])

    def _announce_end(self, view: dict[str, Any]) -> None:
        view = {k: terminal_safe(v, one_line=True) if isinstance(v, str) else v for k, v in view.items()}
        name = view.get("destination") or view.get("id")
        status = str(view.get("status"))
        if status == "succeeded":
            self.notify(f"{name} finished: {view.get('output_version') or 'no version reported'}",
                        title="Training succeeded", markup=False, timeout=10)
        elif status == "failed":
            reason = (view.get("error") or "no error message").splitlines()[0][:200]
            self.notify(f"{name} failed: {reason}", title="Training failed", severity="error",
                        markup=False, timeout=15)
        else:
            self.notify(f"{name} was {status}", title="Training stopped", severity="warning", markup=False)
        self.bell()
        command = self.hooks.get(status)
        if command:
            task = asyncio.get_running_loop().create_task(run_hook(command, view))
            self.hook_tasks.add(task)
            task.add_done_callback(self.hook_tasks.discard)

    def subscribe_log(self, training_id: str, sink: Callable[[str], None]) -> Callable[[], None]:
        self.log_sinks.setdefault(training_id, []).append(sink)
        return lambda: self.log_sinks.get(training_id, []).remove(sink) if sink in self.log_sinks.get(
            training_id, []) else None

    def live_view(self, training_id: str, *, tracked: bool = True) -> dict[str, Any] | None:
        """The freshest view: the live tracker's progress merged over the stored record
        (`tracked=False`: the stored record only, while the tracker is still being built)."""
        record = self.store.get(training_id)
        if record is None:
            return self.records.get(training_id)
        now = self.clock()
        tracker = self.service.updater.tracker(training_id) if tracked else None
        view = status_view(record, tracker.estimate(now) if tracker else None, now=now)
        if tracker is not None and view["terminal"]:
            # A finished training's record keeps the figures of its last significant update
            # (or none, when it was imported without its log): the parsed log knows the last.
            state = tracker.state
            for key in ("step", "total_steps", "loss", "lr", "rate", "train_percent"):
                if getattr(state, key) is not None:
                    view[key] = getattr(state, key)
        self.records[training_id] = view
        return view

    def _tick(self) -> None:
        self.ticked.publish(self.clock())
        self._refresh_listener_state()

    # ----- listener, polling and errors --------------------------------------------------------
    def _refresh_listener_state(self) -> None:
        listener = self.listener
        if listener is None:
            starting = self.boot is not None and self.connection.importing or self.listener_factory
            self.connection.public_url = None
            self.connection.listener_error = "starting" if starting else "no listener"
        else:
            status = listener.status
            self.connection.public_url = status.public_url
            self.connection.listener_error = None if status.tunnel_up else status.tunnel
            self.connection.webhooks = max(self.connection.webhooks, status.accepted)
        self.connection_changed.publish(None)  # also moves "last update N ago" on

    def _poll_error(self, error: ReplitrackError) -> None:
        if isinstance(error, (NetworkError, ServerError)):
            self.connection.online = False
            self.connection.last_error = str(error)
            self.connection_changed.publish(None)
        # Tell once per kind of problem and minute, not once per training per poll.
        now = time.monotonic()
        kind = type(error).__name__
        if now - self._told.get(kind, -ERROR_REPEAT) >= ERROR_REPEAT:
            self._told[kind] = now
            self._last_error = str(error)
            self.report(error)

    def report(self, error: BaseException) -> None:
        """Show an error to the person and keep running. ReplitrackErrors say what to do;
        anything else is a bug, said as such (and logged with its traceback)."""
        if isinstance(error, ReplitrackError):
            title, message = type(error).__name__.removesuffix("Error") or "Error", str(error)
        else:
            log.error("unexpected error", exc_info=error)
            title, message = "Unexpected error", f"{type(error).__name__}: {error} (replitrack keeps running)"
        self.notify(message, title=title, severity="error", markup=False, timeout=12)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False: a failure must still reach the person.
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report(event.worker.error)

    async def guarded(self, action: Awaitable[Any]) -> Any:
        try:
            return await action
        except ReplitrackError as error:
            self.report(error)
            return None

    def run_action_safely(self, action: Awaitable[Any], *, name: str = "action") -> None:
        self.run_worker(self.guarded(action), name=name, group="actions", exit_on_error=False)

    # ----- actions shared by the screens -------------------------------------------------------
    async def import_all(self) -> int:
        def on_page(pages: int, count: int) -> None:
            self.connection.importing = f"page {pages} · {count} trainings"
            self.connection_changed.publish(None)

        self.connection.importing = "…"
        self.connection_changed.publish(None)
        try:
            count = await self.service.import_all(on_page)
        except ReplitrackError as error:
            self.report(error)
            return 0
        finally:
            self.connection.importing = None
            self.connection_changed.publish(None)
        self.notify(f"Imported {count} trainings from your account.", title="Import", markup=False)
        return count

    def confirm_then(self, question: str, action: Callable[[], Awaitable[Any]]) -> None:
        from tui.screens.confirm import ConfirmScreen

        def answered(ok: bool | None) -> None:
            if ok:
                self.run_action_safely(action())

        self.push_screen(ConfirmScreen(question), answered)

    def retry(self, training_id: str) -> None:
        view = self.records.get(training_id) or {}
        name = view.get("destination") or training_id

        async def go() -> None:
            result = await self.service.retry(training_id)
            self.notify(f"Started {result.training_id} for {name}", title="Retry", markup=False)

        self.confirm_then(f"Start a new training for {name} with the same trainer and inputs as "
                          f"{training_id}?", go)

    def cancel(self, training_id: str) -> None:
        view = self.records.get(training_id) or {}
        if str(view.get("status")) in ("succeeded", "failed", "canceled", "aborted"):
            self.notify(f"{training_id} has already {view.get('status')}: nothing to cancel.",
                        severity="warning", markup=False)
            return
        name = view.get("destination") or training_id

        async def go() -> None:
            await self.service.cancel(training_id)
            self.notify(f"Cancel requested for {name}", title="Cancel", markup=False)

        self.confirm_then(f"Cancel the running training {training_id} ({name})? This cannot be undone.", go)

    def open_training_page(self, training_id: str) -> None:
        view = self.records.get(training_id) or {}
        url = replicate_web_url(view.get("web_url"), training_id)  # https on replicate.com, nothing else
        self.open_url(url)
        self.notify(f"Opened {url}", markup=False, timeout=3)

    def copy(self, what: str, value: str | None) -> None:
        if not value:
            self.notify(f"No {what} yet.", severity="warning", markup=False)
            return
        self.copy_to_clipboard(value)
        self.notify(f"Copied the {what}: {value}", markup=False, timeout=4)

    # ----- screens -----------------------------------------------------------------------------
    def open_detail(self, training_id: str) -> None:
        from tui.screens.detail import DetailScreen
        from tui.screens.models import ModelsScreen

        if isinstance(self.screen, ModelsScreen):
            self.switch_screen(DetailScreen(training_id))  # see on_mount: models is installed
        else:
            self.push_screen(DetailScreen(training_id))

    def action_back_to_models(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.switch_screen("models")

    def action_open_sync(self) -> None:
        from tui.screens.sync import SyncScreen

        if not isinstance(self.screen, SyncScreen):
            self.push_screen(SyncScreen())

    def action_new_training(self) -> None:
        from tui.screens.new_training import NewTrainingScreen

        self.push_screen(NewTrainingScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_sign_in(self) -> None:
        self.sign_in(then=self.start_background if self.needs_sign_in else None)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Sync", "Trainings that differ from Replicate: sync, retry, cancel", self.action_open_sync)
        yield SystemCommand("New training", "Start a training on Replicate", self.action_new_training)
        yield SystemCommand("Import all trainings", "Fetch every training of the account",
                            lambda: self.run_action_safely(self.import_all(), name="import"))
        yield SystemCommand("Sign in", "Enter or change the Replicate API token", self.action_sign_in)
        yield SystemCommand("Help", "Keys and what each screen shows", self.action_help)
        extra = getattr(screen, "palette_commands", None)
        if callable(extra):
            yield from extra()


def create_app(service: TrainingService, **options: Any) -> ReplitrackApp:
    """The app as every entry point builds it; see ReplitrackApp for the options."""
    return ReplitrackApp(service, **options)
