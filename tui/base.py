"""The bases of the app's screens and widgets: the same as Textual's, with `self.app` typed as
the replitrack app (Textual types it as any App), so that what the app offers is checked.

Typing only (Textual's `getters.app`, as Textual itself declares `app`): at run time these are
Textual's classes as they are, and importing the app here would make a cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from textual.screen import ModalScreen, Screen
from textual.widget import Widget

if TYPE_CHECKING:
    from textual import getters

    from tui.app import ReplitrackApp

ResultType = TypeVar("ResultType")


class ReplitrackScreen(Screen[ResultType]):
    if TYPE_CHECKING:
        app = getters.app(ReplitrackApp)


class ReplitrackModalScreen(ModalScreen[ResultType]):
    if TYPE_CHECKING:
        app = getters.app(ReplitrackApp)


class ReplitrackWidget(Widget):
    if TYPE_CHECKING:
        app = getters.app(ReplitrackApp)
