"""Try it: run the version a training produced, from where you watched it train.

The prompt starts as `a photo of <trigger word>` and the main inputs of the trained version's
schema come with their defaults. A try runs as a prediction (webhooks through the app's listener
when it has one, polling as the fallback, both through core's Updater), shows its progress and
log, then its image in the terminal (textual-image, see tui/terminal_images.py: Kitty graphics
or Sixel where the terminal has them, Unicode half-blocks otherwise). Every try is kept with the training: left/right browse
them, `o` opens the file, `c` copies its path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Log, ProgressBar, Static

from core.errors import ReplitrackError
from core.models import Status
from core.text import terminal_safe
from tui import terminal_images
from tui.base import ReplitrackScreen
from tui.widgets.footer import KeyFooter

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
_STEPS = re.compile(r"^(\d+)it \[", re.MULTILINE)  # the denoising bar (see simulator/predictions.py)


def denoise_fraction(log: str, steps: int, outputs: int) -> float | None:
    """How far the denoising bars went: each output runs `steps` steps."""
    found = [int(n) for n in _STEPS.findall(log)]
    if not found or steps <= 0:
        return None
    finished = sum(1 for a, b in zip(found, found[1:]) if b < a)  # the count starts again per output
    return min(1.0, (finished * steps + found[-1]) / (steps * max(1, outputs)))


class TryScreen(ReplitrackScreen[None]):
    DEFAULT_CSS = """
    TryScreen #try-title { height: 1; padding: 0 1; margin-top: 1; }
    TryScreen #try-body { height: 1fr; }
    TryScreen #try-side { width: 52; padding: 0 1; border-right: vkey $panel-lighten-2; }
    TryScreen #try-side Label { margin-top: 1; color: $text-muted; }
    TryScreen .try-field { height: 3; }
    TryScreen .try-field Label { width: 20; margin-top: 1; }
    TryScreen .try-field Input { width: 1fr; }
    TryScreen #try-state { height: auto; margin-top: 1; }
    TryScreen #try-progress { margin-top: 1; }
    TryScreen #try-log { height: 1fr; margin-top: 1; border-top: solid $panel-lighten-2; }
    TryScreen #try-main { width: 1fr; padding: 0 1; }
    TryScreen #try-caption { height: auto; max-height: 6; }
    TryScreen #try-view { height: 1fr; }
    TryScreen #try-image { width: auto; height: 1fr; }
    TryScreen #try-text { height: auto; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="try.back"),
        Binding("left", "browse(-1)", "Older", id="try.older"),
        Binding("right", "browse(1)", "Newer", id="try.newer"),
        Binding("o", "open_file", "Open file", id="try.open"),
        Binding("c", "copy_path", "Copy path", id="try.copy"),
        Binding("ctrl+r", "run", "Run", id="try.run"),
        Binding("x", "cancel_try", "Cancel", id="try.cancel"),
    ]

    def __init__(self, training_id: str) -> None:
        super().__init__()
        self.training_id = training_id
        self.schema: dict[str, Any] | None = None
        self.index = -1  # which try the gallery shows (-1: the newest)
        self.running: str | None = None  # the prediction being followed
        self._log_shown = 0

    # ----- building ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="try-title")
        with Horizontal(id="try-body"):
            with Vertical(id="try-side"):
                yield Label("Prompt (enter runs it)")
                yield Input(id="try-prompt", placeholder="what to generate")
                yield VerticalScroll(id="try-fields")
                yield Static(id="try-state")
                yield ProgressBar(id="try-progress", total=100, show_eta=False)
                yield Log(id="try-log", highlight=False, max_lines=500)
            with Vertical(id="try-main"):
                yield Static(id="try-caption")
                with VerticalScroll(id="try-view"):
                    yield Static(id="try-text")
                    yield terminal_images.image_widget(None, id="try-image") or Static(id="try-image")
        yield KeyFooter()

    def on_mount(self) -> None:
        from core.predictions import prompt_for

        record = self.app.store.get(self.training_id) or {"id": self.training_id}
        version = str(record.get("output_version") or "").rpartition(":")[2]
        title = Text.assemble(("Try ", "bold"), (str(record.get("destination") or "?"), "bold"),
                              (f"   version {version[:12]}…" if version else "   no trained version", "dim"),
                              (f"   trained by {self.training_id}", "dim"))
        self.query_one("#try-title", Static).update(title)
        self.query_one("#try-prompt", Input).value = prompt_for(record)
        self.query_one("#try-progress", ProgressBar).display = False
        self.show_gallery()
        self.query_one("#try-prompt", Input).focus()
        self.run_worker(self._load_schema(record), group="try-schema", exit_on_error=False)

    async def _load_schema(self, record: dict[str, Any]) -> None:
        from core.predictions import main_inputs

        try:
            self.schema = await self._tryer().schema(record)
        except ReplitrackError as error:
            self.set_state(Text(str(error), style="red"))
            return
        properties = self.schema.get("properties") or {}
        fields = self.query_one("#try-fields", VerticalScroll)
        for name, default in main_inputs(self.schema).items():
            box = Input("" if default is None else str(default), id=f"try-input-{name}",
                        placeholder=str((properties.get(name) or {}).get("type") or ""))
            await fields.mount(Horizontal(Label(name), box, classes="try-field"))
        if not self.running:
            self.set_state(Text("enter runs the prompt · tab, then ←/→ browse the tries · o opens the file · c copies its path",
                                style="dim"))

    def _tryer(self) -> Any:
        from core.predictions import Tryer

        app: Any = self.app
        service = app.service
        return Tryer(app.store, service.client, service.updater.predictions,
                     webhook_url=lambda: service.webhook_url, poll_seconds=getattr(app, "try_poll_seconds", 2.0))

    # ----- running a try -----------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def action_run(self) -> None:
        if self.running:
            self.app.notify("A try is running: wait for it, or press x to cancel it.", severity="warning",
                            markup=False)
            return
        try:
            given = self._inputs()
        except ReplitrackError as error:
            self.set_state(Text(str(error), style="red"))
            return
        self.run_worker(self._run(given), group="try-run", exit_on_error=False)

    def _inputs(self) -> dict[str, Any]:
        from core.errors import BadArgumentError
        from core.predictions import check_input
        from tui.training_form import fields_of

        if self.schema is None:
            raise BadArgumentError("the version's inputs are still loading (or could not be read): wait a moment")
        given: dict[str, Any] = {"prompt": self.query_one("#try-prompt", Input).value}
        fields = {f.name: f for f in fields_of(self.schema)}
        for box in self.query(".try-field Input").results(Input):
            name = (box.id or "").removeprefix("try-input-")
            if name in fields:
                given[name] = box.value  # text: check_input reads it by the input's type
        return check_input(given, self.schema, "this version")

    async def _run(self, given: dict[str, Any]) -> None:
        tryer = self._tryer()
        record = self.app.store.get(self.training_id) or {}
        log = self.query_one("#try-log", Log)
        log.clear()
        self._log_shown = 0
        bar = self.query_one("#try-progress", ProgressBar)
        bar.update(progress=0)
        bar.display = True
        self.set_state(Text("starting…", style="yellow"))
        try:
            started = await tryer.start(record, given)
            self.running = started.prediction_id
            self.index = -1
            self.show_gallery()
            final = await tryer.follow(started.prediction_id, self._progress)
            if final.get("status") == "succeeded" and final.get("output") is not None:
                await tryer.download(started.prediction_id)
        except ReplitrackError as error:
            self.set_state(Text(str(error), style="red"))
        else:
            status = str(final.get("status"))
            style = "green" if status == "succeeded" else "red"
            self.set_state(Text(f"{status}" + (f": {final.get('error')}" if final.get("error") else ""), style=style))
        finally:
            self.running = None
            bar.display = False
            self.index = -1
            self.show_gallery()
            self.query_one("#try-view", VerticalScroll).focus()  # ←/→, o and c act on the gallery

    def _progress(self, child: dict[str, Any]) -> None:
        """Called by the follower with the stored prediction after every change."""
        text = self.app.store.read_log(child["id"])
        if len(text) > self._log_shown:
            self.query_one("#try-log", Log).write(terminal_safe(text[self._log_shown:]))
            self._log_shown = len(text)
        inputs = child.get("input") or {}
        fraction = denoise_fraction(text, int(inputs.get("num_inference_steps") or 28),
                                    int(inputs.get("num_outputs") or 1))
        if fraction is not None:
            self.query_one("#try-progress", ProgressBar).update(progress=fraction * 100)
        self.set_state(Text(str(child.get("status")), style="yellow"))

    def action_cancel_try(self) -> None:
        if not self.running:
            return
        pid = self.running
        self.run_worker(self.app.guarded(self._tryer().cancel(pid)), group="try-cancel",
                        exit_on_error=False)

    # ----- the gallery ---------------------------------------------------------------------------
    def tries(self) -> list[dict[str, Any]]:
        return self.app.service.updater.predictions.predictions(self.training_id)

    def current(self) -> dict[str, Any] | None:
        tries = self.tries()
        if not tries:
            return None
        self.index = max(-len(tries), min(self.index, -1))
        return tries[self.index]

    def current_file(self) -> Path | None:
        child = self.current()
        if child is None or not child.get("files"):
            return None
        return self.app.store.home / str(child["files"][0])

    def show_gallery(self) -> None:
        from core.predictions import output_text

        tries = self.tries()
        child = self.current()
        caption = self.query_one("#try-caption", Static)
        shown = self.query_one("#try-text", Static)
        image: Any = self.query_one("#try-image")
        if child is None:
            caption.update(Text("No tries yet: write a prompt and press enter.", style="dim"))
            image.display = shown.display = False
            return
        position = len(tries) + self.index + 1
        text = Text()
        text.append(f"Try {position}/{len(tries)}  ", style="bold")
        text.append_text(Text(str(child.get("status")), style="green" if child.get("status") == "succeeded" else "yellow"))
        text.append(f"   {child['id']}\n", style="dim")
        text.append(str((child.get("input") or {}).get("prompt") or ""), style="bold")
        others = {k: v for k, v in (child.get("input") or {}).items() if k != "prompt"}
        if others:
            text.append("\n" + "  ".join(f"{k}={v}" for k, v in sorted(others.items())), style="dim")
        path = self.current_file()
        if path is not None:
            text.append(f"\n{child['files'][0]}  (o opens, c copies the path)", style="dim")
        caption.update(text)
        if not self.running:  # the log of the try on show (a running one streams its own)
            log = self.query_one("#try-log", Log)
            log.clear()
            log.write(terminal_safe(self.app.store.read_log(child["id"])))
        message: Text | None = None
        picture: Path | None = None
        if Status.parse(child.get("status")) is Status.FAILED or child.get("error"):
            message = Text(str(child.get("error") or "failed"), style="red")
        elif child.get("download_error"):
            message = Text(str(child["download_error"]), style="red")
        elif path is not None and path.suffix.lower() in IMAGE_SUFFIXES and path.exists():
            picture = path
            if isinstance(image, Static):  # textual-image could not load here
                message, picture = Text(f"this terminal cannot show images ({terminal_images.failure}): "
                                        "o opens the file", style="yellow"), None
        elif path is not None:
            message = Text(f"saved: {path}")
        elif (said := output_text(child.get("output"))) is not None:
            message = Text(terminal_safe(said))
        elif not Status.parse(child.get("status")).terminal:
            message = Text("running…", style="yellow")
        shown.display = message is not None
        shown.update(message or "")
        image.display = picture is not None
        if not isinstance(image, Static) and image.image != picture:
            image.image = picture

    def action_browse(self, step: int) -> None:
        tries = self.tries()
        if not tries:
            return
        self.index = max(-len(tries), min(-1, self.index + step))
        self.show_gallery()

    def action_open_file(self) -> None:
        path = self.current_file()
        if path is None:
            self.app.notify("This try has no saved file.", severity="warning", markup=False)
            return
        self.app.open_url(path.as_uri())
        self.app.notify(f"Opened {path}", markup=False, timeout=3)

    def action_copy_path(self) -> None:
        path = self.current_file()
        self.app.copy("file path", str(path) if path else None)

    def set_state(self, text: Text) -> None:
        self.query_one("#try-state", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()
