"""Every key of the screen underneath, and what each screen is for."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

ABOUT = (
    "replitrack follows your Replicate trainings live. Updates arrive by webhook when the tunnel "
    "is up, and by polling otherwise (every 5 s while a training runs, once a minute as a check "
    "when webhooks flow). Models: every training. Enter: its detail. y: sync with Replicate, "
    "retry, cancel. n: start a training. ctrl+p: every action by name, and themes."
)


def keys_table(screen: Screen) -> Table:
    table = Table(box=None, padding=(0, 2), show_header=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    seen: set[str] = set()
    for bindings in (getattr(screen, "BINDINGS", []), getattr(screen.app, "BINDINGS", [])):
        for binding in bindings:
            if not isinstance(binding, Binding) or binding.key in seen:
                continue
            seen.add(binding.key)
            table.add_row(binding.key_display or binding.key, Text(binding.description))
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("Help", style="bold"))
            yield Static(Text(ABOUT), id="help-about")
            yield Static(Text(f"Keys on this screen ({type(self.under).__name__.removesuffix('Screen')})",
                              style="bold"))
            yield Static(keys_table(self.under))
            yield Static(Text("esc closes this help", style="dim"))
