"""The big progress bar of the detail screen: two rows of bar, then percent, step/total and stage."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from textual.widget import Widget

from core.formats import stage_label as stage_label  # the models list shows it too
from tui.format import bar, status_colour



class BigProgress(Widget):
    DEFAULT_CSS = """
    BigProgress { height: 3; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: dict[str, Any] = {}

    def show(self, view: dict[str, Any]) -> None:
        self.view = view
        self.refresh()

    def render(self) -> Group:
        view = self.view
        value = float(view.get("overall_percent") or 0)
        style = status_colour(view.get("status"))
        width = max(10, self.size.width - 2)
        line = bar(value / 100, width, style=style)
        caption = Text()
        caption.append(f"{value:.1f}%", style=f"bold {style}")
        if view.get("estimated"):
            caption.append(" (estimate: the trainer prints no progress)", style="yellow")
        if view.get("total_steps"):
            caption.append(f"   step {int(view.get('step') or 0):,} / {int(view['total_steps']):,}", style="bold")
            if view.get("train_percent") is not None:
                caption.append(f"  ({float(view['train_percent']):.0f}% of training)", style="dim")
        caption.append(f"   {stage_label(view.get('stage'))}", style="italic")
        return Group(line, line, caption)
