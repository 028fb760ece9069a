"""The line at the top of every screen: where updates come from and whether the data is live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from tui.base import ReplitrackWidget
from tui.format import ago


@dataclass
class Connection:
    """What the status line shows; the app owns one and publishes a signal when it changes."""

    mode: str = "live"  # "live" (a real account) or "demo" (the embedded simulator)
    account: str | None = None
    public_url: str | None = None  # the tunnel's URL while webhooks can reach us
    webhooks: int = 0  # webhooks received this session
    listener_error: str | None = None  # why webhooks cannot reach us, in a few words
    online: bool = True  # False after a poll failed to reach Replicate
    last_ok: datetime | None = None
    last_error: str | None = None
    importing: str | None = None  # "page 3 · 300 trainings" while importing
    signed_in: bool = True
    checking: bool = False  # the token is being checked: neither "live" nor "not signed in" yet


def tunnel_note(state: str | None, reason: str | None) -> str:
    """Why webhooks cannot reach us, in a few words, from the listener's tunnel state and reason."""
    if state == "down":
        return f"tunnel down: {reason}" if reason else "tunnel down"
    return "tunnel starting…" if state == "starting" else "tunnel off"


def describe(connection: Connection, now: datetime, width: int = 10_000) -> Text:
    """The status line; when `width` is short, the details go first (the URL, the demo's note:
    both are on the Events screen), so the live state at its end stays visible."""
    for detail in (2, 1, 0):
        text = _describe(connection, now, detail)
        if text.cell_len <= width:
            break
    return text


def _describe(connection: Connection, now: datetime, detail: int) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" replitrack ", style="bold reverse")
    if connection.mode == "demo":
        text.append(" DEMO ", style="bold black on yellow")
        if detail >= 2:
            text.append(" simulated Replicate, no network ", style="dim")
    elif connection.account:
        text.append(f" {connection.account} ", style="bold")
    text.append(" │ ", style="dim")
    if connection.public_url:
        text.append("◆ webhooks ", style="green")
        if detail >= 1:
            text.append(connection.public_url + " ", style="dim")
        text.append(f"({connection.webhooks} received)", style="")
    else:
        text.append("◇ polling only", style="yellow")
        text.append(f" ({connection.listener_error or 'tunnel off'})", style="dim")
    text.append(" │ ", style="dim")
    if not connection.signed_in:
        text.append("○ not signed in (ctrl+p → Sign in)", style="bold yellow")
    elif connection.checking:
        text.append("⟳ checking the token…", style="bold cyan")
    elif connection.importing:
        text.append(f"⟳ importing {connection.importing}", style="bold cyan")
    elif connection.online:
        text.append("● live", style="bold green")
    else:
        text.append("○ offline, data may be stale", style="bold red")
        if connection.last_ok:
            text.append(f" (last update {ago(connection.last_ok, now)})", style="dim")
    return text


class StatusLine(ReplitrackWidget):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; }
    """

    def on_mount(self) -> None:
        self.app.connection_changed.subscribe(self, self._changed)

    def _changed(self, _: object) -> None:
        # A screen under the current one is still composited: repainting it there would make
        # Textual repaint the whole top screen. Its screen refreshes it when it comes back.
        if self.screen.is_current:
            self.refresh()

    def on_click(self) -> None:
        # The header's "N received" (or "polling only") is where one looks for webhooks.
        action = getattr(self.app, "action_open_events", None)
        if action is not None:
            action()

    def render(self) -> Text:
        app = self.app
        return describe(app.connection, app.clock(), self.size.width)
