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
    """Every key of `screen` (the focused widget's, the screen's, the app's; shown in the footer
    or not), one row per action, with the binding id a keymap in the config file can remap."""
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="dim")
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("does")
    table.add_column("id (for a keymap)", style="dim", no_wrap=True)
    rows: dict[tuple[int, str], tuple[list[str], Binding, int]] = {}
    for active in screen.active_bindings.values():
        binding = active.binding
        # The screen's own keys first, then its list's or log's, then the app's, Textual's last.
        rank = (0 if binding.id else 3) + (0 if active.node is screen else 2 if active.node is screen.app else 1)
        keys, _, _ = rows.setdefault((id(active.node), binding.action), ([], binding, rank))
        keys.append(screen.app.get_key_display(binding))
    for keys, binding, _ in sorted(rows.values(), key=lambda row: row[2]):
        table.add_row(" ".join(dict.fromkeys(keys)), Text(binding.description or binding.action), binding.id or "")
    table.add_row("ctrl+p", Text("command palette: every action by name, and themes"), "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close", id="help.close"),
        Binding("j,down", "scroll(1)", "Down", show=False, id="help.down"),
        Binding("k,up", "scroll(-1)", "Up", show=False, id="help.up"),
        Binding("g,home", "scroll(-100000)", "Top", show=False, id="help.top"),
        Binding("G,end", "scroll(100000)", "End", show=False, id="help.end"),
    ]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def action_scroll(self, lines: int) -> None:
        box = self.query_one("#help-box", VerticalScroll)
        box.scroll_to(y=max(0, box.scroll_offset.y + lines), animate=False)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("Help", style="bold"))
            yield Static(Text(ABOUT), id="help-about")
            yield Static(Text(f"Keys on this screen ({type(self.under).__name__.removesuffix('Screen')})",
                              style="bold"))
            yield Static(keys_table(self.under))
            yield Static(Text("esc closes this help. Remap keys with \"keymap\": {\"id\": \"keys\"} in "
                              "config.json (replitrack config shows where it is).", style="dim"))
