"""core.inputs: one rule from typed text to a trainer's input, the same through `replitrack train`,
the TUI's new-training form and the simulator; and the one zipper of training images."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from cli_helpers import cli_env, run
from core import inputs
from core.errors import BadArgumentError
from simulator import Simulator
from simulator.schemas import FLUX_TRAINING_INPUT, validate_input
from tui.screens.new_training import NewTrainingScreen
from tui_support import SIZE, simulated, wait_for

FLUX = "ostris/flux-dev-lora-trainer"
IMAGES = "https://example.invalid/portraits.zip"
DEST = "demo-user/portraits"


class Refused(str):
    """A row's expected outcome when the input is refused: a piece of the message."""


# (input, typed text, the value the trainer receives or why it is refused): the flux trainer's
# TrainingInput as the simulator serves it (integer steps 3..6000, boolean autocaption, number
# learning_rate, text trigger_word).
TABLE: list[tuple[str, str, Any]] = [
    ("steps", "1000", 1000),
    ("steps", "1000.0", 1000),
    ("steps", "1e3", 1000),
    ("steps", "many", Refused("input steps must be a whole number, not 'many'")),
    ("steps", "10.5", Refused("input steps must be a whole number, not 10.5")),
    ("steps", "1", Refused("input steps must be at least 3, not 1")),
    ("autocaption", "yes", True),
    ("autocaption", "False", False),
    ("autocaption", "0", False),
    ("autocaption", "maybe", Refused("input autocaption must be true or false, not 'maybe'")),
    ("learning_rate", "4e-4", 0.0004),
    ("learning_rate", "fast", Refused("input learning_rate must be a number, not 'fast'")),
    ("trigger_word", "1000", "1000"),  # a number typed into a text input stays text
    ("trigger_word", " TOK ", "TOK"),
    ("stepz", "10", Refused("has no input 'stepz'; its inputs are: autocaption, autocaption_prefix")),
]


def outcome(name: str, text: str) -> Any:
    """What core.inputs makes of one typed input, as a TABLE row's third column."""
    try:
        values = inputs.check(FLUX_TRAINING_INPUT, inputs.values_from_text(FLUX_TRAINING_INPUT, {name: text}),
                              trainer=FLUX, later=["input_images"])
    except BadArgumentError as error:
        return Refused(str(error))
    return values[name]


@pytest.mark.parametrize(("name", "text", "expected"), TABLE)
def test_the_rule_from_text(name: str, text: str, expected: Any) -> None:
    got = outcome(name, text)
    if isinstance(expected, Refused):
        assert isinstance(got, Refused) and expected in got
    else:
        assert got == expected and type(got) is type(expected)


def test_empty_text_leaves_the_default_and_required_inputs_are_named() -> None:
    assert inputs.values_from_text(FLUX_TRAINING_INPUT, {"steps": "  ", "trigger_word": ""}) == {}
    found = inputs.problems(FLUX_TRAINING_INPUT, {"steps": None})
    assert [(p.name, p.rule) for p in found] == [("input_images", "required")]
    assert inputs.problems(FLUX_TRAINING_INPUT, {}, later=["input_images"]) == []
    with pytest.raises(BadArgumentError, match="input input_images must be a URL"):
        inputs.check(FLUX_TRAINING_INPUT, {"input_images": "~/photos"})


def test_untyped_inputs_are_json_when_they_parse_else_text() -> None:
    untyped: dict[str, Any] = {}
    assert inputs.from_text(untyped, "[1, 2]") == [1, 2]
    assert inputs.from_text(untyped, "null") is None
    assert inputs.from_text(untyped, "a=b") == "a=b"
    # Cog wraps enums as allOf: the rule reads through it.
    schema = {"properties": {"optimizer": {"allOf": [{"enum": ["adamw8bit", "prodigy"], "type": "string"}]}}}
    with pytest.raises(BadArgumentError, match="input optimizer must be one of adamw8bit, prodigy, not 'sgd'"):
        inputs.check(schema, inputs.values_from_text(schema, {"optimizer": "sgd"}))


def test_the_simulator_words_the_same_check_as_cog_does() -> None:
    invalid = validate_input(FLUX_TRAINING_INPUT, {"input_images": "https://x/y.zip", "steps": 1, "autocaption": "yes",
                                                   "unknown": 1})
    assert [item.as_json() for item in invalid] == [
        {"type": "type", "field": "input.autocaption", "description": "Invalid type. Expected: boolean, given: string"},
        {"type": "greater_than_equal", "field": "input.steps", "description": "Must be greater than or equal to 3"},
    ]
    assert [item.as_json() for item in validate_input(FLUX_TRAINING_INPUT, {})] == [
        {"type": "required", "field": "input", "description": "input_images is required"}]


# ----- the same table through the real command and the real form ------------------------------------------
@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(speed=400.0, seed=7)
    await simulator.start()
    simulator.add_model(DEST)
    yield simulator
    await simulator.stop()


async def test_the_command_follows_the_rule(sim: Simulator) -> None:
    env = cli_env(sim.base_url, sim.token)
    for name, text, expected in TABLE:
        result = await run("train", FLUX, "-d", DEST, "--images", IMAGES, "-i", f"{name}={text}", env=env)
        if isinstance(expected, Refused):
            assert result.code == 64 and expected in result.err, (name, text, result.err)
        else:
            assert result.code == 0, (name, text, result.err)
            sent = sim.training(result.out.strip())["input"][name]
            assert sent == expected and type(sent) is type(expected), (name, text, sent)


async def test_the_form_follows_the_rule() -> None:
    async with simulated() as env:
        env.sim.add_model(DEST)
        app = env.app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, NewTrainingScreen), what="the form")
            form = app.screen
            assert isinstance(form, NewTrainingScreen)
            form.query_one("#new-destination", Input).value = DEST
            form.query_one("#new-images", Input).value = IMAGES
            await pilot.press("ctrl+l")
            await wait_for(pilot, lambda: form.query("#field-steps"), what="the trainer's inputs")
            defaults = {f.name: form.query_one(f"#field-{f.name}", Input).value for f in form.fields}
            for name, text, expected in TABLE:
                for field, value in defaults.items():
                    form.query_one(f"#field-{field}", Input).value = value
                if name in defaults:
                    form.query_one(f"#field-{name}", Input).value = text
                    form.query_one("#new-extra", Input).value = ""
                else:
                    form.query_one("#new-extra", Input).value = f"{name}={text}"
                try:
                    got = form.collect()[name]
                except BadArgumentError as error:
                    got = Refused(str(error))
                if isinstance(expected, Refused):
                    assert isinstance(got, Refused) and expected in got, (name, text, got)
                else:
                    assert got == expected and type(got) is type(expected), (name, text, got)
            # And on screen, as a person sees it when starting.
            form.query_one("#field-steps", Input).value = "1000.5"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "whole number" in str(form.query_one("#new-message").render()),
                           what="the refusal on screen")
            assert not env.sim.trainings(), "nothing was started"


# ----- the one zipper --------------------------------------------------------------------------------------
def test_a_folder_is_zipped_with_its_images_and_captions_only(tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / "a.jpg").write_bytes(b"jpg")
    (folder / "sub" / "b.PNG").write_bytes(b"png")
    (folder / "a.txt").write_text("a caption")
    (folder / "notes.md").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"finder")
    (folder / ".hidden" / "c.jpg").write_bytes(b"hidden")
    data, name = inputs.images_upload(folder)
    assert name == "faces.zip" and isinstance(data, bytes)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["a.jpg", "a.txt", "sub/b.PNG"]
    assert archive.read("a.txt") == b"a caption"


def test_a_zip_is_uploaded_as_it_is_and_anything_else_is_refused(tmp_path: Path) -> None:
    zipped = tmp_path / "set.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.jpg", b"jpg")
    assert inputs.images_upload(zipped) == (zipped, "set.zip")
    (tmp_path / "captions").mkdir()
    (tmp_path / "captions" / "a.txt").write_text("only a caption")
    with pytest.raises(BadArgumentError, match="holds no images"):
        inputs.images_upload(tmp_path / "captions")
    with pytest.raises(BadArgumentError, match="no such file or folder"):
        inputs.images_upload(tmp_path / "nope")
    (tmp_path / "a.jpg").write_bytes(b"jpg")
    with pytest.raises(BadArgumentError, match="not a zip"):
        inputs.images_upload(tmp_path / "a.jpg")
