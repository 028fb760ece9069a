"""Sign in: ask for the API token (masked), check it against /v1/account, offer to save it.

On success the service gets a client with the new token and the screen dismisses with True, so
whatever the person was doing (the app starting, a training waiting to start) carries on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.worker import Worker, WorkerState
from textual.widgets import Button, Checkbox, Input, Static

from core import config
from core.client import ReplicateClient
from core.errors import AuthError, ConfigError, ReplitrackError
from tui.base import ReplitrackModalScreen


def save_token(token: str, path: Path | None = None) -> Path:
    """Write the token into the config file, readable by the user only (0600), keeping other keys."""
    path = path or config.config_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        data["api_token"] = token
        # Create with 0600 from the start: the token is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(data, file, indent=2)
        os.chmod(path, 0o600)
    except OSError as error:
        raise ConfigError(f"could not save the token to {path}: {error.strerror}. Set "
                          "REPLICATE_API_TOKEN instead, or fix the directory's permissions.") from error
    return path


class SignInScreen(ReplitrackModalScreen[bool]):
    BINDINGS = [Binding("escape", "give_up", "Not now", id="signin.cancel")]

    def __init__(self, reason: str | None = None) -> None:
        """`reason`: why it opened by itself (a refused token), shown above the input."""
        super().__init__()
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="signin-box"):
            yield Static(Text("Sign in to Replicate", style="bold"))
            if self.reason:
                yield Static(Text(self.reason, style="bold red"), id="signin-reason")
            yield Static(Text("Paste an API token (from replicate.com/account/api-tokens). It is "
                              "checked against your account before anything else happens.", style="dim"))
            yield Input(placeholder="r8_…", password=True, id="signin-token")
            yield Checkbox(f"Save it in replitrack's {config.config_path().name} (readable only by you)",
                           value=True, id="signin-save")
            yield Static(id="signin-message")
            with Horizontal(id="signin-buttons"):
                yield Button("Sign in", variant="primary", id="signin-go")
                yield Button("Not now", id="signin-cancel")

    def on_mount(self) -> None:
        self.query_one("#signin-token", Input).focus()

    def message(self, text: str, style: str = "red") -> None:
        self.query_one("#signin-message", Static).update(Text(text, style=style))

    @on(Input.Submitted, "#signin-token")
    @on(Button.Pressed, "#signin-go")
    def _go(self) -> None:
        token = self.query_one("#signin-token", Input).value.strip()
        if not token:
            self.message("Paste your token first.")
            return
        self.message(f"Checking {config.mask_token(token)}…", "cyan")
        self.check(token)

    @on(Button.Pressed, "#signin-cancel")
    def action_give_up(self) -> None:
        self.dismiss(False)

    @work(exclusive=True, exit_on_error=False)
    async def check(self, token: str) -> None:
        service = self.app.service
        old = service.client
        candidate = ReplicateClient(token=token, base_url=old.base_url)
        try:
            account = await candidate.account()
        except AuthError:
            await candidate.aclose()
            self.message("Replicate does not accept this token (401). Check that you copied all "
                         "of it, or create a new one.")
            return
        except ReplitrackError as error:
            await candidate.aclose()
            self.message(str(error))
            return
        if self.query_one("#signin-save", Checkbox).value:
            try:
                where = save_token(token)
                self.notify(f"Token saved to {where}", markup=False, timeout=4)
            except ConfigError as error:
                self.app.report(error)
        service.client = candidate
        await old.aclose()
        name = str(account.get("username") or "your account")
        self.app.connection.account = name
        self.app.connection.signed_in = True
        self.app.connection_changed.publish(None)
        self.notify(f"Signed in as {name}", markup=False, timeout=4)
        self.dismiss(True)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.app.report(event.worker.error)
