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
    rows: dict[tuple[int, str], tuple[list[str], list[str], Binding, int, bool]] = {}
    taken: set[str] = set()  # a key bound nearer the focus hides the same key further out
    app = screen.app
    for node, bindings in screen._modal_binding_chain:
        for key, binding in bindings:
            if key in taken:
                continue
            taken.add(key)
            # Listed even when it does not apply right now (e.g. copy version while running).
            applies = app._check_action_state(binding.action, node) is not False
            rank = 0 if node is screen else 2 if node is app else 1
            keys, ids, _, _, _ = rows.setdefault((id(node), binding.action), ([], [], binding, rank, applies))
            keys.append(app.get_key_display(binding))
            if binding.id:
                ids.append(binding.id)
    # Ours (with ids) first: the screen's, then its list's or log's, then the app's; Textual's last.
    for keys, ids, binding, _, applies in sorted(rows.values(), key=lambda row: (0 if row[1] else 3) + row[3]):
        description = Text(binding.description or binding.action)
        if not applies:
            description.append(" (not now)", style="dim")
        table.add_row(" ".join(dict.fromkeys(keys)), description, " ".join(dict.fromkeys(ids)))
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
