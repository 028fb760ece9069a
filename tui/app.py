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
import os
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

from core.errors import AuthError, NetworkError, ReplitrackError, ServerError
from core.models import TERMINAL, replicate_web_url, utcnow
from core.observers import Observers
from core.service import TrainingService
from core.text import terminal_safe
from core.updates import UpdateResult
from core.views import is_terminal, with_progress
from tui.format import use_theme
from tui.hooks import run_hook
from tui.inspector import Inspector
from tui.screens.models import ModelsScreen
from tui.widgets.status_line import Connection, tunnel_note

log = logging.getLogger(__name__)
ERROR_REPEAT = 60.0  # seconds before the same kind of polling error is shown again
# Toast titles people read (never an exception's class name); the first matching class wins.
ERROR_TITLES: tuple[tuple[str, str], ...] = (
    ("AuthError", "Replicate refused the token"), ("RateLimitError", "Replicate is rate limiting"),
    ("NetworkError", "Can't reach Replicate"), ("ServerError", "Replicate had a problem"),
    ("NotFoundError", "Not found on Replicate"), ("ValidationError", "Replicate refused the request"),
    ("BadArgumentError", "Check the input"), ("ConfigError", "Setup needed"),
    ("StoreError", "The local store"), ("ApiError", "Replicate answered with an error"),
)


class TrainingsChanged(Message):
    """Some trainings changed (the app keeps which). A newer one supersedes a queued one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TrainingsChanged)


class WebhookEventsChanged(Message):
    """The listener recorded a request. A newer one supersedes a queued one."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, WebhookEventsChanged)


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
        self.booting = boot is not None  # until the boot has run: the header says "starting", not "no listener"
        self.listener_factory = listener_factory  # builds the listener after the first paint
        # On an account, a token is only "live" once Replicate accepted it (start_background).
        self.connection = Connection(mode=mode, signed_in=bool(service.client.token),
                                     checking=mode == "live" and bool(service.client.token))
        self.records: dict[str, dict[str, Any]] = {}  # training id → its record, live figures merged
        self.log_sinks: dict[str, Observers[str]] = {}  # training id → who shows its log
        self.trainings_changed: Signal[frozenset[str]] = Signal(self, "trainings-changed")
        self.connection_changed: Signal[None] = Signal(self, "connection-changed")
        self.ticked: Signal[datetime] = Signal(self, "tick")
        self.inspector = Inspector(lambda: self.listener)  # the screens' view of the listener
        self.webhook_events: Signal[None] = Signal(self, "webhook-events")
        self.hook_tasks: set[asyncio.Task[int]] = set()
        self._dirty: set[str] = set()
        self._pending_logs: dict[str, list[str]] = {}
        self._ended: list[str] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._last_error: str | None = None
        self._told: dict[str, float] = {}  # error kind → when it was last shown
        from tui import terminal_images

        terminal_images.probe()  # before Textual owns the terminal (see tui/terminal_images.py)

    # ----- start and stop ----------------------------------------------------------------------
    def on_mount(self) -> None:
        use_theme(self.get_css_variables())  # the formatters' colours: the theme's
        self.theme_changed_signal.subscribe(self, lambda _: use_theme(self.get_css_variables()))
        # One shape for every training: its stored record, with the tracker's fresher figures
        # merged in (`with_progress`) when an update or the detail brings them.
        self.records = {record["id"]: record for record in self.store.trainings()}
        self._unsubscribe = self.service.updater.subscribe(self._on_update)
        for notice in self.store.notices:
            self.notify(notice, title="Store", severity="warning", markup=False, timeout=15)
        self._apply_keymap()
        self._refresh_listener_state()
        if self.tick_enabled:
            self.set_interval(1.0, self._tick)
        # Installed, so that switching to a detail keeps it (rows, cursor, sort) without keeping
        # it underneath: a screen underneath is still composited, and each of its updates would
        # repaint the whole detail screen.
        self.install_screen(ModelsScreen(), name="models")
        self.push_screen("models")
        # Everything else waits for the first paint: the boot and the listener import modules
        # (aiohttp, the simulator) and would hold the window blank meanwhile.
        self.call_after_refresh(self._after_first_paint)

    def _apply_keymap(self) -> None:
        """The config file's "keymap" (binding id → keys; `?` shows the ids)."""
        from core import config
        from tui.keymap import read_keymap

        self.keymap_file = config.config_path()
        keymap, problems = read_keymap(self.keymap_file)
        if keymap:
            self.set_keymap(keymap)
        for problem in problems:
            self.notify(problem, title="Keymap", severity="warning", markup=False, timeout=15)

    def _check_keymap(self) -> None:
        from tui.keymap import app_binding_ids

        known = app_binding_ids(type(self))
        unknown = sorted(set(self._keymap) - known)
        if unknown:
            self.notify(f"keymap in {self.keymap_file}: no binding has the id {', '.join(unknown)} "
                        "(press ? on a screen to see its ids)", title="Keymap", severity="warning",
                        markup=False, timeout=15)

    def _after_first_paint(self) -> None:
        # What exists now (modules, Textual's machinery, the first screen) lives as long as the
        # app: move it out of the garbage collector's way, so that a full collection, which
        # otherwise walks all of it, does not stall a frame (measured: tens of ms each). Collect
        # first, so that no garbage is frozen with it.
        if self._keymap:
            self._check_keymap()
        gc.collect()
        gc.freeze()
        if self.boot is not None:
            self.run_worker(self._boot(), name="boot", group="boot", exit_on_error=False)
        elif self.needs_sign_in:
            self.sign_in()
        else:
            self.start_background()

    async def _boot(self) -> None:
        """Run the slow set-up after the first paint, then start as usual."""
        assert self.boot is not None
        self.connection.importing = "starting…"
        self.connection.listener_error = "tunnel starting…"
        self.connection_changed.publish(None)
        try:
            await self.boot(self)
        except ReplitrackError as error:
            self.report(error)
        finally:
            self.connection.importing = None
            self.booting = False
            self._refresh_listener_state()
        if self.needs_sign_in:
            self.sign_in()
        else:
            self.start_background()

    def on_unmount(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        self.inspector.detach()

    def start_background(self, *, signed_in_now: bool = False) -> None:
        """Polling (and the first import) once there is a token to use. On an account, the
        token is checked first: a wrong or revoked one opens the sign-in screen with the reason,
        and nothing says "live" meanwhile. `signed_in_now`: the person just signed in, so the
        account's trainings are imported whatever the store already holds."""
        self.needs_sign_in = False
        self.connection.signed_in = bool(self.service.client.token)
        if self.connection.mode == "live" and self.connection.signed_in:
            self.connection.checking = True
            self.connection_changed.publish(None)
            self.run_worker(self._check_token_then_start(signed_in_now), name="account", group="account",
                            exclusive=True, exit_on_error=False)
        else:
            self._start_services(signed_in_now)

    async def _check_token_then_start(self, signed_in_now: bool) -> None:
        try:
            account = await self.service.client.account()
        except AuthError as error:
            self.connection.checking = False
            self.connection.signed_in = False
            self.needs_sign_in = True
            self.workers.cancel_group(self, "poller")
            self.connection_changed.publish(None)
            where = (" It comes from REPLICATE_API_TOKEN: one pasted here is used now; change the variable "
                     "for later runs." if os.environ.get("REPLICATE_API_TOKEN") else "")
            self.sign_in(reason=f"Replicate refused the token replitrack has ({error}). It may have been "
                                f"revoked or mistyped: paste a valid one.{where}")
            return
        except ReplitrackError:
            account = {}  # offline or Replicate down: the poller says so and keeps trying
        self.connection.checking = False
        self.connection.account = str(account.get("username") or "") or None
        self.connection_changed.publish(None)
        self._start_services(signed_in_now)

    def _start_services(self, signed_in_now: bool = False) -> None:
        """The listener, the first import and the poller: what a usable token starts."""
        if self.start_listener and (self.listener is not None or self.listener_factory is not None):
            self.start_listener = False
            self.run_worker(self._start_listener(), name="listener", group="listener", exit_on_error=False)
        do_import = self.import_on_start and (signed_in_now or not self.records)
        if (do_import or self.poll) and self.service.client.token:
            self.run_worker(self._import_then_details(do_import), name="import", group="import", exclusive=True,
                            exit_on_error=False)
        if self.poll:
            self.run_worker(self.service.poll_forever(on_error=self._poll_error), name="poller",
                            group="poller", exclusive=True, exit_on_error=False)

    async def _start_listener(self) -> None:
        try:
            if self.listener is None and self.listener_factory is not None:
                self.listener = self.listener_factory(self.service)  # imports aiohttp: after paint
            await self.listener.start()
        except ReplitrackError as error:
            self.connection.listener_error = "listener not running"
            self.report(error)
        self._refresh_listener_state()

    def sign_in(self, then: Callable[[], object] | None = None, *, reason: str | None = None) -> None:
        """Ask for a token. On success whatever a token starts is started (listener, poller,
        import: also when the sign-in came from the New-training form), then `then` runs."""
        from tui.screens.sign_in import SignInScreen  # loaded when first shown, for start-up time

        def done(ok: bool | None) -> None:
            if ok:
                if self.needs_sign_in or self.connection.mode == "live":
                    self.start_background(signed_in_now=True)
                if then is not None:
                    then()
            else:
                self.notify("Not signed in: nothing can be fetched from Replicate. Press ctrl+p → "
                            "Sign in to try again.", severity="warning", markup=False)

        self.push_screen(SignInScreen(reason=reason), done)

    # ----- the stream of updates ---------------------------------------------------------------
    def _on_update(self, result: UpdateResult) -> None:
        """Called by the Updater for every applied update (webhook, poll, sync, import, ...).

        It may run in an aiohttp handler's task, outside the app's context (no timers, no
        widgets there): it only records what changed and posts one message; the handler, in the
        app's context, does the rest.
        """
        if result.source in ("poll", "sync", "import", "webhook"):
            self.connection.last_ok = self.clock()
            if not self.connection.online and result.source != "webhook":
                self.connection.online, self._last_error = True, None
        if not result.accepted or result.record is None:
            return
        tid = result.training_id
        self.records[tid] = with_progress(result.record, result.progress, now=self.clock())
        if result.new_log and self.log_sinks.get(tid):
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
            self.log_sinks[tid].notify("".join(chunks))
        if self._dirty:
            changed, self._dirty = frozenset(self._dirty), set()
            self.trainings_changed.publish(changed)
            self.connection_changed.publish(None)
        ended, self._ended = self._ended, []
        for tid in ended:
            self._announce_end(self.records[tid])

    def on_webhook_events_changed(self, _: WebhookEventsChanged) -> None:
        self._refresh_listener_state()  # the header's count moves with every recorded request
        self.webhook_events.publish(None)

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
        return self.log_sinks.setdefault(training_id, Observers()).subscribe(sink)

    def live_view(self, training_id: str, *, tracked: bool = True) -> dict[str, Any] | None:
        """The freshest view: the live tracker's progress merged over the stored record
        (`tracked=False`: the stored record only, while the tracker is still being built)."""
        record = self.store.get(training_id)
        if record is None:
            return self.records.get(training_id)
        now = self.clock()
        tracker = self.service.updater.tracker(training_id) if tracked else None
        view = with_progress(record, tracker.estimate(now) if tracker else None, now=now)
        if tracker is not None and is_terminal(record):
            # A finished training's record keeps the figures of its last significant update
            # (or none, when it was imported without its log): the parsed log knows the last.
            last = tracker.estimate(now).to_dict()  # (a finished run did all its steps)
            for key in ("step", "total_steps", "loss", "lr", "rate", "train_percent"):
                if last[key] is not None:
                    view[key] = last[key]
        self.records[training_id] = view
        return view

    def _tick(self) -> None:
        self.ticked.publish(self.clock())
        self._refresh_listener_state()

    # ----- listener, polling and errors --------------------------------------------------------
    def _refresh_listener_state(self) -> None:
        listener = self.listener
        if listener is None:
            starting = self.booting or self.listener_factory and not self.needs_sign_in  # nothing starts signed out
            self.connection.public_url = None
            self.connection.listener_error = "tunnel starting…" if starting else "no listener"
        else:
            self.inspector.attach(lambda _: self.post_message(WebhookEventsChanged()))
            status = listener.status
            self.connection.public_url = status.public_url
            self.connection.listener_error = None if status.tunnel_up else tunnel_note(status.tunnel_state, status.tunnel_reason)
            self.connection.webhooks = status.accepted  # the one count: what the listener accepted
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
            kinds = {cls.__name__ for cls in type(error).__mro__}
            title = next((text for kind, text in ERROR_TITLES if kind in kinds), "Couldn't do that")
            message = str(error)
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

    async def _import_then_details(self, do_import: bool) -> None:
        """The first import, then (while the app keeps itself up to date) the log, error and final
        progress of each finished training imported without them, most recent first, at a pace
        that leaves Replicate's rate limit to everything else. Opening one fetches it at once."""
        if do_import:
            await self.import_all()
        if self.poll:
            try:
                await self.service.fetch_details()
            except ReplitrackError:
                pass  # offline or signed out: the poller says so; the next start goes on from here

    def confirm_then(self, question: str, action: Callable[[], Awaitable[Any]]) -> None:
        from tui.screens.confirm import ConfirmScreen  # loaded when first shown, for start-up time

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
        if view.get("status") in TERMINAL:
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
        if self.open_url(url) is False:  # type: ignore[func-returns-value]
            # Nothing could open it (no browser, an SSH session): the URL, copied, to paste.
            self.copy_to_clipboard(url)
            self.notify(f"Couldn't open a browser: {url} (copied to the clipboard)", severity="warning",
                        markup=False, timeout=10)
            return
        self.notify(f"Opened {url}", markup=False, timeout=3)

    def open_url(self, url: str, *, new_tab: bool = True) -> bool | None:  # type: ignore[override]
        """Textual's open_url, but in a terminal say whether a browser took it (False: none did)."""
        from textual.drivers.web_driver import WebDriver

        if isinstance(self._driver, WebDriver):
            super().open_url(url, new_tab=new_tab)
            return None
        import webbrowser

        try:
            return bool(webbrowser.open(url, new=2 if new_tab else 0))
        except webbrowser.Error:
            return False

    def copy(self, what: str, value: str | None) -> None:
        if not value:
            self.notify(f"No {what} yet.", severity="warning", markup=False)
            return
        self.copy_to_clipboard(value)
        self.notify(f"Copied the {what}: {value}", markup=False, timeout=4)

    # ----- screens -----------------------------------------------------------------------------
    def open_detail(self, training_id: str) -> None:
        from tui.screens.detail import DetailScreen  # loaded when first shown, for start-up time

        if isinstance(self.screen, ModelsScreen):
            self.switch_screen(DetailScreen(training_id))  # see on_mount: models is installed
        else:
            self.push_screen(DetailScreen(training_id))

    def open_try(self, training_id: str) -> None:
        """Try the version a succeeded training produced (tui/screens/try_model.py)."""
        from tui.screens.try_model import TryScreen

        record = self.store.get(training_id) or {}
        if record.get("status") != "succeeded" or not record.get("output_version"):
            self.notify(f"{training_id} has no trained version to try ({record.get('status') or 'unknown'}): "
                        "only a training that succeeded can be tried.", severity="warning", markup=False)
            return
        self.push_screen(TryScreen(training_id))

    def open_compare(self, ids: list[str]) -> None:
        """Compare 2–6 trainings: loss curves overlaid, inputs that differ (tui/screens/compare.py)."""
        from tui.screens.compare import MAX_RUNS, CompareScreen

        known = [tid for tid in dict.fromkeys(ids) if self.store.get(tid) is not None]
        if not 2 <= len(known) <= MAX_RUNS:
            self.notify(f"Mark 2 to {MAX_RUNS} trainings with space to compare them ({len(known)} marked).",
                        severity="warning", markup=False)
            return
        self.push_screen(CompareScreen(known))

    def action_back_to_models(self) -> None:
        if len(self.screen_stack) > 2:
            self.pop_screen()
        else:
            self.switch_screen("models")

    def action_open_sync(self) -> None:
        from tui.screens.sync import SyncScreen  # loaded when first shown, for start-up time

        if not isinstance(self.screen, SyncScreen):
            self.push_screen(SyncScreen())

    def action_open_events(self) -> None:
        from tui.screens.events import EventsScreen

        if not isinstance(self.screen, EventsScreen):
            self.push_screen(EventsScreen())

    def action_new_training(self) -> None:
        from tui.screens.new_training import NewTrainingScreen  # loaded when first shown, for start-up time

        self.push_screen(NewTrainingScreen())

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen  # loaded when first shown, for start-up time

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_sign_in(self) -> None:
        self.sign_in()

    def action_help_quit(self) -> None:
        """Ctrl+C (outside a text field, where it copies) leaves like every command: exit 130."""
        self.exit(return_code=130)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Sync", "Trainings that differ from Replicate: sync, retry, cancel", self.action_open_sync)
        yield SystemCommand("Webhook events", "Every request the listener received, its verdict; replay",
                            self.action_open_events)
        yield SystemCommand("Listener state", "Tunnel URL, why it is down, secret source, counts",
                            self.action_open_events)
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
