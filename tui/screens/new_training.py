"""Start a training: trainer (and version), destination (created if missing, after asking), the
trainer's own inputs read from its schema, and training images from a folder, a zip or a URL.

Without a token the form stays as filled, sign-in runs, and the training starts right after:
nothing is typed twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.worker import Worker, WorkerState
from textual.widgets import Button, Input, Label, Static

from core import inputs
from core.errors import BadArgumentError, ConfigError, NotFoundError, ReplitrackError
from tui.base import ReplitrackScreen
from tui.training_form import Field, fields_of, images_field, parse_pairs
from tui.widgets.footer import KeyFooter
from tui.widgets.status_line import StatusLine

DEFAULT_TRAINER = "ostris/flux-dev-lora-trainer"


class FieldError(BadArgumentError):
    """A bad value in one field of the form: `widget_id` is the input to take the person to."""

    def __init__(self, widget_id: str, message: str) -> None:
        super().__init__(message)
        self.widget_id = widget_id


class NewTrainingScreen(ReplitrackScreen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", id="new.back"),
        Binding("ctrl+l", "load", "Load inputs", id="new.load"),
        Binding("ctrl+s", "start", "Start training", id="new.start"),
    ]

    def __init__(self, trainer: str = DEFAULT_TRAINER, destination: str = "") -> None:
        super().__init__()
        self.initial = (trainer, destination)
        self.fields: list[Field] = []  # those shown as their own inputs
        self.all_fields: list[Field] = []
        self.schema: dict[str, Any] = {}
        self.images_field: str | None = None
        self.loaded_for: tuple[str, str] | None = None
        self.starting = False

    def compose(self) -> ComposeResult:
        yield StatusLine()
        with VerticalScroll(id="new-form"):
            yield Static(Text("New training", style="bold"), classes="section")
            yield Label("Trainer (owner/name)")
            yield Input(self.initial[0], id="new-trainer")
            yield Label("Trainer version (empty: the latest)")
            yield Input(id="new-version", placeholder="version id")
            yield Label("Destination model (owner/name; created if missing, after asking)")
            yield Input(self.initial[1], id="new-destination", placeholder="your-name/your-model")
            yield Label("Training images: a local folder or zip (uploaded), or a URL")
            yield Input(id="new-images", placeholder="~/photos/me  or  ./faces.zip  or  https://…/faces.zip")
            yield Label("More inputs as name=value pairs (optional; the fields below appear once loaded)")
            yield Input(id="new-extra", placeholder="steps=1000 trigger_word=TOK")
            yield Vertical(id="new-fields")
            yield Static(id="new-message")
            with Horizontal(id="new-buttons"):
                yield Button("Load inputs (ctrl+l)", id="new-load")
                yield Button("Start training (ctrl+s)", variant="primary", id="new-start")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#new-destination" if self.initial[0] else "#new-trainer", Input).focus()
        self.note("Press ctrl+l to load the trainer's inputs.")

    def note(self, text: str, style: str = "dim") -> None:
        self.query_one("#new-message", Static).update(Text(text, style=style))

    def value(self, widget_id: str) -> str:
        return self.query_one(f"#{widget_id}", Input).value.strip()

    # ----- schema ------------------------------------------------------------------------------
    @on(Button.Pressed, "#new-load")
    @on(Input.Submitted, "#new-trainer")
    def action_load(self) -> None:
        self.load()

    @work(exclusive=True, group="new-load", exit_on_error=False)
    async def load(self, then_start: bool = False) -> None:
        trainer, version = self.value("new-trainer"), self.value("new-version")
        self.note(f"Loading the inputs of {trainer}…", "cyan")
        try:
            schema = await self.app.service.client.training_input_schema(trainer, version or None)
        except ConfigError:
            self.note("Sign in first: the schema comes from Replicate.", "yellow")
            self.app.sign_in(then=lambda: self.load(then_start))
            return
        except ReplitrackError as error:
            self.note(str(error), "red")
            return
        fields = fields_of(schema)
        self.images_field = images_field(fields)
        await self.show_fields([f for f in fields if f.name != self.images_field])
        self.all_fields = fields
        self.schema = schema
        self.loaded_for = (trainer, version)
        self.note(f"{len(self.fields)} inputs for {trainer}. Files: a folder or zip is uploaded, a URL is "
                  "passed as is.")
        if then_start:
            self.start()

    async def show_fields(self, fields: list[Field]) -> None:
        box = self.query_one("#new-fields", Vertical)
        old = {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields
               if self.query(f"#field-{f.name}")}
        await box.remove_children()
        widgets: list[Any] = []
        for field in fields:
            label = f"{field.name}{' *' if field.required else ''} ({field.kind})"
            if field.choices:
                label += f" one of: {', '.join(field.choices)}"
            widgets.append(Label(Text(label, style="bold" if field.required else "")))
            if field.description:
                widgets.append(Static(Text(field.description[:300], style="dim"), classes="field-help"))
            default = "" if field.default is None else str(field.default).lower() if field.kind == "boolean" \
                else str(field.default)
            widgets.append(Input(old.get(field.name, default), id=f"field-{field.name}",
                                 placeholder="folder, zip or URL" if field.kind == "file" else default))
        await box.mount_all(widgets)
        self.fields = fields

    # ----- start -------------------------------------------------------------------------------
    @on(Button.Pressed, "#new-start")
    def action_start(self) -> None:
        self.start()

    def start(self) -> None:
        if self.starting:
            return
        if not self.app.service.client.token:
            # Keep everything typed; sign in, then come back here and go on by itself.
            self.note("Sign in first; the training starts right after.", "yellow")
            self.app.sign_in(then=self.start)
            return
        if self.loaded_for != (self.value("new-trainer"), self.value("new-version")):
            self.load(then_start=True)
            return
        try:
            values = self.collect()
            # Local files are read (and zipped) now, before anything is created on Replicate.
            uploads = self.pack_files(values)
        except FieldError as error:
            self.show_invalid(error)
            return
        except BadArgumentError as error:
            self.note(str(error), "red")
            return
        self.submit(values, uploads)

    def show_invalid(self, error: FieldError) -> None:
        """The message (also as a toast: the note below the form may be out of view), and the
        person taken to the field to fix (scrolled into view, focused)."""
        self.note(str(error), "red")
        self.notify(str(error), title="Check the input", severity="error", markup=False, timeout=8)
        found = self.query(f"#{error.widget_id}")
        if found:
            widget = found.first()
            self.query_one("#new-form", VerticalScroll).scroll_to_widget(widget, animate=False)
            widget.focus()

    def collect(self) -> dict[str, Any]:
        destination = self.value("new-destination")
        if "/" not in destination:
            raise FieldError("new-destination", "the destination must be owner/name, e.g. your-name/my-lora")
        typed = {f.name: self.query_one(f"#field-{f.name}", Input).value for f in self.fields}
        try:
            typed.update(parse_pairs(self.value("new-extra")))
        except BadArgumentError as error:
            raise FieldError("new-extra", str(error)) from None
        if self.images_field and self.value("new-images"):
            typed[self.images_field] = self.value("new-images")
        # Local files (a folder, a zip) are read by pack_files and uploaded when starting.
        files = {f.name: typed.pop(f.name).strip() for f in self.all_fields if f.kind == "file"
                 and typed.get(f.name, "").strip() and not inputs.URI.match(typed[f.name].strip())}
        values = inputs.values_from_text(self.schema, typed)
        found = inputs.problems(self.schema, values, trainer=self.value("new-trainer"), later=files)
        if found:  # the person is taken to the first field to fix; the note names every problem
            raise FieldError(self.widget_of(found[0].name), "; ".join(problem.message for problem in found))
        return {**values, **files}

    def widget_of(self, name: str) -> str:
        """The input a value was typed in: the images box, its own field, or the extra pairs."""
        if name == self.images_field:
            return "new-images"
        return f"field-{name}" if any(f.name == name for f in self.fields) else "new-extra"

    def pack_files(self, values: dict[str, Any]) -> dict[str, tuple[bytes | Path, str]]:
        """Each local folder or zip given for a file input, read now: a missing or empty one is
        refused before the destination is created or anything is uploaded."""
        packed: dict[str, tuple[bytes | Path, str]] = {}
        for field in self.all_fields:
            value = values.get(field.name)
            if field.kind == "file" and isinstance(value, str) and not inputs.URI.match(value):
                try:
                    packed[field.name] = inputs.images_upload(Path(value))
                except BadArgumentError as error:
                    raise FieldError(self.widget_of(field.name), str(error)) from None
                except OSError as error:
                    raise FieldError(self.widget_of(field.name),
                                     f"cannot read {value}: {error.strerror or error}") from None
        return packed

    @work(exclusive=True, group="new-start", exit_on_error=False)
    async def submit(self, values: dict[str, Any], uploads: dict[str, tuple[bytes | Path, str]]) -> None:
        self.starting = True
        try:
            await self._submit(values, uploads)
        except ReplitrackError as error:
            self.note(str(error), "red")
            self.app.report(error)
        finally:
            self.starting = False

    async def _submit(self, values: dict[str, Any], uploads: dict[str, tuple[bytes | Path, str]]) -> None:
        app: Any = self.app
        client = app.service.client
        trainer, version, destination = (self.value("new-trainer"), self.value("new-version"),
                                          self.value("new-destination"))
        self.note(f"Checking {destination}…", "cyan")
        try:
            await client.get_model(destination)
        except NotFoundError:
            create = await app.push_screen_wait(_confirm(f"{destination} does not exist. Create it (private)?"))
            if not create:
                self.note("Not started: the destination model does not exist.", "yellow")
                return
            await client.create_model(destination)
            self.notify(f"Created {destination}", markup=False, timeout=3)
        for key, (data, name) in uploads.items():
            size = f" ({len(data) / 1024:.0f} KB)" if isinstance(data, bytes) else ""
            self.note(f"Uploading {name}{size}…", "cyan")
            upload = await client.upload_file(data, name, "application/zip")
            values[key] = upload["urls"]["get"]
        self.note("Starting the training…", "cyan")
        result = await app.service.start(trainer, destination, values, version=version or None)
        self.notify(f"Started {result.training_id} → {destination}", title="Training started", markup=False)
        app.pop_screen()
        app.open_detail(result.training_id)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.app.report(event.worker.error)


def _confirm(question: str) -> Any:
    from tui.screens.confirm import ConfirmScreen  # loaded when first shown, for start-up time

    return ConfirmScreen(question)
