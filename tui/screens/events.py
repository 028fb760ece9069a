"""The webhook inspector: every request the listener received, newest first, live, with its
verdict; the listener's full state above it; Enter shows one request (headers and the body as
pretty JSON, paged), `r` replays it after asking. What ngrok's inspector and `stripe listen` give.

Everything here comes from `app.inspector` (tui/inspector.py), never from the listener module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.widgets import Log, Static

from core.text import terminal_safe
from tui.base import ReplitrackScreen
from tui.format import percent, safe
from tui.inspector import VERDICTS
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine, tunnel_note
from tui.widgets.training_list import Column, TrainingList

VERDICT_STYLE = {"accepted": "green", "duplicate": "dim", "ignored": "yellow",
                 "rejected": "bold white on dark_red", "error": "bold white on red"}
PAGE_LINES = 1_000  # lines of a body shown per page
LONG_LINE = 4_000  # characters of one line shown (a `logs` value is one JSON string)

COLUMNS: tuple[Column, ...] = (
    Column("time", "Received", 8), Column("verdict", "Verdict", 10), Column("reason", "Reason", 14, flex=True),
    Column("training", "Training", 24, drop=2), Column("event", "Event", 9, drop=3),
    Column("http", "HTTP", 4, drop=5), Column("size", "Size", 9, drop=4), Column("duration", "Took", 9, drop=6),
)


def shown(text: str) -> str:
    """Untrusted text (headers, bodies) as the inspector shows it: control characters as `·`."""
    return terminal_safe(text, mark="·")


def size_text(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def event_summary(record: Any) -> dict[str, Any]:
    return {"id": record.id, "received_at": record.received_at, "verdict": record.verdict,
            "reason": record.reason, "training_id": record.training_id, "event": record.event,
            "http_status": record.http_status, "body_size": record.body_size,
            "duration_ms": record.duration_ms, "replay_of": record.replay_of}


def event_cells(view: dict[str, Any], widths: Any) -> dict[str, Text]:
    verdict = str(view.get("verdict") or "")
    reason = str(view.get("reason") or "")
    if view.get("replay_of"):
        reason += f" (replay of {view['replay_of']})"
    return {
        "time": Text(str(view.get("received_at") or "")[11:19], style="dim"),
        "verdict": Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
        "reason": Text(shown(reason), style="red" if verdict in ("rejected", "error") else ""),
        "training": safe(view.get("training_name") or "–"),
        "event": Text(str(view.get("event") or "–")),
        "http": Text(str(view.get("http_status") or "–"), style="red" if int(view.get("http_status") or 0) >= 300 else ""),
        "size": Text(size_text(int(view.get("body_size") or 0))),
        "duration": Text(f"{float(view.get('duration_ms') or 0):.1f} ms"),
    }


def listener_text(status: dict[str, Any] | None, kept: int) -> Text:
    """The listener's full state, wrapped (never cut off by the width)."""
    text = Text()
    if status is None:
        text.append("No listener: replitrack follows trainings by polling. ", style="yellow")
        text.append("Start it with a tunnel (NGROK_AUTHTOKEN, or --public-url) to receive webhooks.", style="dim")
        return text
    up = status.get("tunnel_state") == "up"
    text.append("◆ webhooks reach us" if up else "◇ polling only", style="bold green" if up else "bold yellow")
    if not up:
        text.append(f" ({tunnel_note(status.get('tunnel_state'), status.get('tunnel_reason'))})", style="yellow")
    text.append("\n")
    rows = [("Public URL", status.get("public_url")), ("Webhook URL", status.get("webhook_url")),
            ("Local API", status.get("local_url")), ("Secret", status.get("secret")),
            ("Received", f"{status.get('accepted', 0)} accepted · {status.get('rejected', 0)} rejected · "
                         f"{kept} kept in the event log"),
            ("Last webhook", status.get("last_webhook_at"))]
    for index, (label, value) in enumerate(rows):
        text.append(f"{label:<13}", style="dim")
        text.append(shown(str(value or "–")))
        if index < len(rows) - 1:
            text.append("\n")
    return text


class EventsScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back", id="events.back"),
        Binding("enter", "inspect", "Inspect", id="events.inspect"),
        Binding("v", "cycle_verdict", "Verdict filter", id="events.verdict"),
        Binding("t", "toggle_training", "Training filter", id="events.training"),
        Binding("r", "replay", "Replay", id="events.replay"),
        Binding("l", "toggle_listener", "Listener", id="events.listener"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.verdict: str | None = None  # show only this verdict
        self.training: str | None = None  # show only this training's events
        self.records: dict[str, dict[str, Any]] = {}
        self._stale = False

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="events-listener")
        yield Static(id="events-caption")
        yield TrainingList(COLUMNS, event_cells, id="events-table")
        yield KeyFooter()

    @property
    def table(self) -> TrainingList:
        return self.query_one("#events-table", TrainingList)

    def on_mount(self) -> None:
        self.app.webhook_events.subscribe(self, self._events_changed)
        self.app.connection_changed.subscribe(self, self._listener_changed)
        self.reload()
        self.table.focus()

    def reload(self) -> None:
        inspector = self.app.inspector
        verdicts = [self.verdict] if self.verdict else None
        found = inspector.events(training_id=self.training, verdicts=verdicts)
        trainings = self.app.records
        self.records = {}
        for record in found:
            summary = event_summary(record)
            # The training as the list names it (its destination), else its short id.
            known = trainings.get(record.training_id or "") or {}
            summary["training_name"] = known.get("destination") or (record.training_id or "")[:10] or None
            self.records[record.id] = summary
        self.table.empty_text = ("No requests yet: they appear here as they arrive." if inspector.available
                                 else "No listener runs, so no webhooks are received (polling only).")
        self.table.set_rows(list(self.records), self.records)
        self.update_caption()
        self._listener_changed(None)

    def update_caption(self) -> None:
        rejected = sum(1 for r in self.records.values() if r["verdict"] in ("rejected", "error"))
        caption = Text(f"{len(self.records)} request{'s' if len(self.records) != 1 else ''}, newest first", style="dim")
        if rejected:
            caption.append(f" · {rejected} rejected", style="bold red")
        caption.append(f" · verdict: {self.verdict or 'all'} (v) · training: {self.training or 'all'} (t)",
                       style="dim")
        self.query_one("#events-caption", Static).update(caption)

    def _listener_changed(self, _: object) -> None:
        if not self.is_current:
            return
        inspector = self.app.inspector
        kept = len(inspector.listener.events) if inspector.available else 0
        self.query_one("#events-listener", Static).update(listener_text(inspector.status(), kept))

    def _events_changed(self, _: object) -> None:
        if self.is_current:
            self.reload()
        else:
            self._stale = True

    def on_screen_resume(self) -> None:
        self.query_one(StatusLine).refresh()
        if self._stale:
            self._stale = False
            self.reload()

    # ----- actions -----------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    @on(TrainingList.Selected, "#events-table")
    def _selected(self, event: TrainingList.Selected) -> None:
        self.app.push_screen(EventDetailScreen(event.training_id))

    def action_inspect(self) -> None:
        if event_id := self.table.current_id:
            self.app.push_screen(EventDetailScreen(event_id))

    def action_cycle_verdict(self) -> None:
        order: list[str | None] = [None, *VERDICTS]
        self.verdict = order[(order.index(self.verdict) + 1) % len(order)]
        self.reload()

    def action_toggle_training(self) -> None:
        if self.training:
            self.training = None
        else:
            current = self.records.get(self.table.current_id or "")
            if not current or not current.get("training_id"):
                self.notify("This request names no training (rejected before it was read).", markup=False)
                return
            self.training = current["training_id"]
        self.reload()

    def action_toggle_listener(self) -> None:
        panel = self.query_one("#events-listener", Static)
        panel.display = not panel.display

    def action_replay(self) -> None:
        if event_id := self.table.current_id:
            replay(self.app, event_id)

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Inspect request", "Headers and body of the selected request", self.action_inspect)
        yield SystemCommand("Replay request", "Run the selected request through the listener again (asks first)",
                            self.action_replay)
        yield SystemCommand("Filter by verdict", "Cycle: all, accepted, duplicate, ignored, rejected, error",
                            self.action_cycle_verdict)
        yield SystemCommand("Filter by training", "Only the selected request's training (again: all)",
                            self.action_toggle_training)


def replay(app: Any, event_id: str) -> None:
    """Ask, then replay `event_id` and say how it went."""

    async def go() -> None:
        record = await app.inspector.replay(event_id)
        severity = "information" if record.verdict in ("accepted", "duplicate", "ignored") else "error"
        app.notify(f"Replayed {event_id} as {record.id}: {record.verdict} ({record.reason})",
                   title="Replay", severity=severity, markup=False)

    app.confirm_then(f"Replay {event_id}? The recorded request goes through the listener again (its "
                     "signature checked as of when it was sent); the update rules keep the store right.", go)


def body_lines(body: bytes | None, size: int) -> list[str]:
    """The body as lines to read: pretty JSON when it parses, else the text; long lines cut."""
    if body is None:
        return [f"(the body, {size_text(size)}, was not kept: too large, or evicted from the event log)"]
    text = body.decode("utf-8", errors="replace")
    try:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    lines = []
    for line in text.splitlines() or [""]:
        if len(line) > LONG_LINE:
            line = line[:LONG_LINE] + f"… ({len(line) - LONG_LINE:,} more characters)"
        lines.append(shown(line))
    return lines


class EventDetailScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="event.back"),
        Binding("right_square_bracket", "page(1)", "Next page", key_display="]", id="event.next_page"),
        Binding("left_square_bracket", "page(-1)", "Previous page", key_display="[", id="event.previous_page"),
        Binding("r", "replay", "Replay", id="event.replay"),
        Binding("j", "scroll(1)", "Down", show=False, id="event.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="event.up"),
        Binding("g", "top", "Top", show=False, id="event.top"),
        Binding("G", "end", "End", show=False, key_display="G", id="event.end"),
    ]

    def __init__(self, event_id: str) -> None:
        super().__init__()
        self.event_id = event_id
        self.lines: list[str] = []
        self.page = 0

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(id="event-title")
        yield Static(id="event-meta")
        yield Static(id="event-page", classes="section")
        yield Log(highlight=False, id="event-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        inspector = self.app.inspector
        record = inspector.event(self.event_id)
        if record is None:
            self.query_one("#event-title", Static).update(Text(f"{self.event_id}: no longer in the event log",
                                                               style="yellow"))
            return
        title = Text.assemble((f"{record.id}  ", "bold"), (record.verdict, VERDICT_STYLE.get(record.verdict, "")),
                              f"  {record.http_status}  ", (shown(record.reason), "dim"))
        self.query_one("#event-title", Static).update(title)
        meta = Text()
        meta.append(f"{record.method} {shown(record.path)}  ·  received {record.received_at}  ·  "
                    f"{size_text(record.body_size)}  ·  took {record.duration_ms:.1f} ms", style="dim")
        if record.training_id:
            meta.append(f"\ntraining {shown(record.training_id)}  ·  event {record.event or '–'}  ·  "
                        f"status {record.status or '–'}  ·  progress "
                        f"{percent(record.progress) if record.progress is not None else '–'}")
        detail = (record.response or {}).get("detail")
        if detail:
            meta.append(f"\n{shown(str(detail))}", style="red")
        self.query_one("#event-meta", Static).update(meta)
        headers = [f"{shown(k)}: {shown(v)}" for k, v in sorted(record.headers.items())]
        self.lines = ["# headers", *headers, "", "# body", *body_lines(inspector.body(self.event_id),
                                                                         record.body_size)]
        self.show_page()
        self.query_one(Log).focus()

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.lines) // PAGE_LINES))

    def show_page(self) -> None:
        log = self.query_one(Log)
        log.clear()
        log.write_lines(self.lines[self.page * PAGE_LINES:(self.page + 1) * PAGE_LINES], scroll_end=False)
        log.scroll_home(animate=False)
        note = "  ] next · [ previous" if self.pages > 1 else ""
        shown = self.lines[self.page * PAGE_LINES:(self.page + 1) * PAGE_LINES]
        wide = max((len(line) for line in shown), default=0) > log.scrollable_content_region.width
        self.query_one("#event-page", Static).update(
            Text.assemble(f"Headers and body  (page {self.page + 1} of {self.pages}, {len(self.lines):,} lines)",
                          (note, "dim"), ("  ← → longer lines" if wide else "", "bold yellow")))

    def action_page(self, step: int) -> None:
        page = max(0, min(self.pages - 1, self.page + step))
        if page != self.page:
            self.page = page
            self.show_page()

    def action_scroll(self, lines: int) -> None:
        log = self.query_one(Log)
        log.scroll_to(y=log.scroll_offset.y + lines, animate=False)

    def action_top(self) -> None:
        self.query_one(Log).scroll_home(animate=False)

    def action_end(self) -> None:
        self.query_one(Log).scroll_end(animate=False)

    def action_replay(self) -> None:
        replay(self.app, self.event_id)
