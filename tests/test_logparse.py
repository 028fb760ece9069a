"""The log parser: stages, training progress, loss/lr series, errors, and incremental feeding."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.logparse import LogParser, LogState, Stage
from synthlog import JOB, flux_lines, flux_log, snapshots, tqdm_line

LOGS = Path(__file__).resolve().parent / "fixtures" / "trainers"


def reference(name: str) -> str:
    """A reference excerpt without its `# source:` line."""
    text = (LOGS / name).read_bytes().decode("utf-8")  # byte for byte: read_text would turn raw \r into \n
    return text.split("\n", 1)[1] if text.startswith("# source:") else text


def parse(text: str, configured_steps: int | None = None) -> LogState:
    parser = LogParser(configured_steps)
    parser.feed(text)
    parser.finish()
    return parser.state


def lines(*items: str) -> str:
    return "".join(item + "\n" for item in items)


# --- stages ----------------------------------------------------------------------------------------
def test_stage_values_labels_and_timeline() -> None:
    assert [s.value for s in Stage.timeline()] == [
        "queued", "booting", "downloading", "preparing", "captioning",
        "loading", "caching", "training", "saving", "uploading",
    ]  # fmt: skip
    assert [s.order for s in Stage.timeline()] == list(range(10))
    assert Stage.SUCCEEDED.order == Stage.FAILED.order == Stage.CANCELED.order == 10
    assert Stage.DOWNLOADING.label == "downloading weights"
    assert Stage.CACHING.label == "caching latents"
    assert all(stage.label for stage in Stage)
    assert Stage("training") is Stage.TRAINING and str(Stage.TRAINING) == "training"


def test_reference_flux_step_line() -> None:
    state = parse(reference("flux-training-step-line.txt"))
    assert state.stage is Stage.TRAINING
    assert (state.step, state.total_steps) == (2482, 3000)
    assert state.train_percent == pytest.approx(82.7333, abs=1e-3)
    assert state.loss == pytest.approx(0.2472) and state.lr == pytest.approx(4e-4)
    assert state.bar_elapsed == 43 * 60 + 27 and state.bar_remaining == 9 * 60 + 4
    assert state.rate == pytest.approx(1 / 1.05)
    assert state.losses == [(2482, pytest.approx(0.2472))] and state.lrs == [(2482, pytest.approx(4e-4))]


def test_reference_first_poll_is_downloading() -> None:
    state = parse(reference("flux-first-poll.txt"))
    assert state.stage is Stage.DOWNLOADING and state.step is None and state.train_percent is None


def test_reference_config_dump_gives_the_total_but_no_progress() -> None:
    state = parse(reference("flux-config-dump-excerpt.txt"))
    assert state.stage in (Stage.LOADING, Stage.PREPARING)
    assert state.total_steps == 1000 and state.step is None and state.train_percent is None


def test_reference_llama_download() -> None:
    state = parse(reference("llama-weights-download-excerpt.txt"))
    assert state.stage is Stage.DOWNLOADING and state.step is None


def test_flux_run_passes_through_every_stage_in_order() -> None:
    parser = LogParser()
    seen = [parser.state.stage]
    text = ""
    for line in flux_lines(600, hf_repo="someone/lora"):  # as webhooks would bring it, line by line
        text += line.text + "\n"
        parser.feed(text)
        if seen[-1] is not parser.state.stage:
            seen.append(parser.state.stage)
    parser.finish()
    assert seen == [
        Stage.QUEUED, Stage.DOWNLOADING, Stage.PREPARING, Stage.LOADING,
        Stage.CACHING, Stage.TRAINING, Stage.SAVING, Stage.UPLOADING,
    ]  # fmt: skip
    state = parser.state
    assert (state.step, state.total_steps, state.train_percent) == (600, 600, 100.0)
    assert [step for step, _ in state.losses] == list(range(1, 601))
    assert [step for step, _ in state.lrs] == list(range(1, 601))
    assert all(lr == pytest.approx(4e-4) for _, lr in state.lrs)


def test_preprocessing_bars_are_not_training_progress() -> None:
    log = flux_log(100)
    before_training = log[: log.index(f"{JOB}:")]
    assert "100%|██████████| 10/10" in before_training and "Caching latents: 100%" in before_training
    state = parse(before_training)
    assert state.stage is Stage.CACHING
    assert state.step is None and state.train_percent is None and state.total_steps == 100
    assert state.bar_remaining is None and state.losses == []


def test_a_bare_bar_with_the_image_count_before_training_is_preprocessing() -> None:
    state = parse(lines("Extracted 12 files from zip to input_images", tqdm_line("", 6, 12, 2, 3.0)))
    assert state.stage is Stage.PREPARING and state.step is None


def test_per_step_saves_stay_training_and_the_final_save_is_saving() -> None:
    log = flux_log(1000, save_every=500)
    middle = log[: log.index("| 600/1000")]
    assert "Saving at step 500" in middle and "_000000500.safetensors" in middle
    assert parse(middle).stage is Stage.TRAINING
    assert parse(log).stage is Stage.SAVING


def test_captioning_flow() -> None:
    state = parse(
        lines(
            "Extracted 5 files from zip to input_images",
            "Loading checkpoint shards:  50%|█████     | 1/2 [00:03<00:03,  3.10s/it]",
        )
    )
    assert state.stage is Stage.CAPTIONING and state.step is None
    state = parse(lines("Extracted 5 files from zip to input_images", "Caption for input_images/a.png: a photo of TOK"))
    assert state.stage is Stage.CAPTIONING


def test_sdxl_trainer() -> None:
    log = lines(
        "Generating 12 captions...",
        tqdm_line("", 12, 12, 5, 2.4),
        "Generating 12 masks...",
        "Upscaling 12 images...",
        tqdm_line("", 12, 12, 8, 1.5),
        "# PTI : Loaded models",
        "# PTI :  Num examples = 12",
        "# PTI :  Total optimization steps = 1000",
    )
    state = parse(log)
    assert state.stage is Stage.LOADING and state.step is None and state.total_steps == 1000
    log += lines("35%|███▌      | 350/1000 [02:10<04:02,  2.68it/s]", "# PTI :  Pivot halfway")
    state = parse(log)
    assert state.stage is Stage.TRAINING
    assert (state.step, state.total_steps, state.train_percent) == (350, 1000, 35.0)
    assert state.bar_remaining == 242 and state.rate == pytest.approx(2.68)
    assert state.loss is None and state.losses == []
    assert parse(log + lines("Saving final model for return")).stage is Stage.SAVING


def test_llm_step_lines_across_epochs() -> None:
    log = lines(
        "Downloading weights to models/llama-2-7b/model_artifacts/training_weights...",
        "--> Training Set Length = 4",
        "num_train_epochs: 2",
        "step 0 is completed and loss is 1.5",
        "step 1 is completed and loss is 1.25",
        "step 2 is completed and loss is 1.0",
        "step 3 is completed and loss is 0.75",
        "step 0 is completed and loss is 0.5",
        "step 1 is completed and loss is 0.25",
    )
    state = parse(log)
    assert state.stage is Stage.TRAINING
    # `step N` counts from 0: step 1 of the second epoch is the sixth step done
    assert state.total_steps == 8 and state.step == 6
    assert state.train_percent == pytest.approx(75.0)
    assert [s for s, _ in state.losses] == [1, 2, 3, 4, 5, 6] and state.loss == 0.25
    saved = lines("we are about to save the PEFT modules", "PEFT modules are saved in training_output directory")
    assert parse(log + saved).stage is Stage.TRAINING  # a save in the middle is not the end
    log += lines("step 2 is completed and loss is 0.2", "step 3 is completed and loss is 0.1") + saved
    assert parse(log).stage is Stage.SAVING


def test_llm_epoch_bars_count_on_across_epochs() -> None:
    log = lines(
        "Training Epoch0:  50%|█████     | 5/10 [00:10<00:10,  2.00s/it]",
        "Training Epoch0: 100%|██████████| 10/10 [00:20<00:00,  2.00s/it]",
        "Training Epoch1:  30%|███       | 3/10 [00:06<00:14,  2.00s/it]",
    )
    state = parse(log)
    assert state.step == 13 and state.total_steps == 20 and state.train_percent == 65.0
    assert state.rate == pytest.approx(0.5)


def test_generic_step_counter() -> None:
    state = parse(lines("Starting setup", "Step 150/1000, loss=0.31, lr=1e-4"))
    assert (state.step, state.total_steps) == (150, 1000)
    assert state.loss == pytest.approx(0.31) and state.lr == pytest.approx(1e-4)
    assert state.stage is Stage.TRAINING
    # a counter that is not about training is not progress
    assert parse(lines("Step 1/3 : installing")).step is None
    # a bare counter counts when its total is the configured number of steps
    assert parse(lines("[ 150/1000 ] loss 0.2"), configured_steps=1000).step == 150
    assert parse(lines("copied 150/1000 files")).step is None


def test_the_bar_is_found_anywhere_in_the_line() -> None:
    log = lines(
        *(
            f"2024-09-10T05:{n:02d}:00Z | " + tqdm_line(JOB, n, 100, n, 1.0, f", lr: 4.0e-04 loss: {1 / n:.3e}")
            for n in range(10, 16)
        )
    )
    state = parse(log)
    assert (state.step, state.total_steps, state.stage) == (15, 100, Stage.TRAINING)
    assert [s for s, _ in state.losses] == list(range(10, 16)) and state.bar_remaining == 85


def test_stages_never_go_backwards() -> None:
    log = reference("flux-training-step-line.txt") + lines("Downloading weights...", "Caching latents for x")
    assert parse(log).stage is Stage.TRAINING


def test_repeated_steps_keep_the_last_value() -> None:
    log = lines(
        tqdm_line(JOB, 1, 10, 1, 1.0, ", lr: 1.0e-04 loss: 5.000e-01"),
        tqdm_line(JOB, 2, 10, 2, 1.0, ", lr: 1.0e-04 loss: 4.000e-01"),
        tqdm_line(JOB, 2, 10, 2, 1.0, ", lr: 2.0e-04 loss: 3.000e-01"),
        tqdm_line(JOB, 1, 10, 2, 1.0, ", lr: 3.0e-04 loss: 2.000e-01"),
    )
    state = parse(log)
    assert state.losses == [(1, 0.2), (2, 0.3)] and state.lrs == [(1, 3e-4), (2, 2e-4)]


def test_traceback_and_error_lines() -> None:
    log = lines(
        reference("flux-training-step-line.txt").strip(),
        "Traceback (most recent call last):",
        'File "/src/train.py", line 10, in train',
        "run()",
        'File "/src/train.py", line 5, in run',
        'raise ValueError("first")',
        "ValueError: first",
        "During handling of the above exception, another exception occurred:",
        "Traceback (most recent call last):",
        'File "/src/predict.py", line 3, in <module>',
        "main()",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "some output after the error",
    )
    state = parse(log)
    assert state.traceback == "\n".join(
        [
            "Traceback (most recent call last):",
            'File "/src/predict.py", line 3, in <module>',
            "main()",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ]
    )
    assert state.error_lines == [
        "ValueError: first",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ]
    assert state.stage is Stage.TRAINING and state.step == 2482


def test_a_traceback_still_arriving_is_shown_so_far() -> None:
    parser = LogParser()
    parser.feed(lines("Traceback (most recent call last):", 'File "x.py", line 1, in <module>'))
    assert parser.state.traceback == 'Traceback (most recent call last):\nFile "x.py", line 1, in <module>'
    assert parser.state.error_lines == []


# --- incremental feeding -----------------------------------------------------------------------------
def test_incomplete_last_line_waits_until_complete_or_finish() -> None:
    parser = LogParser()
    line = reference("flux-training-step-line.txt").strip()
    assert parser.feed(line[:40]) is False and parser.state.lines == 0 and parser.state.step is None
    assert parser.feed(line) is False and parser.state.step is None
    assert parser.finish() is True
    assert parser.state.step == 2482 and parser.state.lines == 1 and parser.state.consumed == len(line)
    assert parser.finish() is False


def test_shorter_or_missing_logs_are_ignored() -> None:
    parser = LogParser()
    assert parser.feed(None) is False and parser.feed("") is False
    full = lines("Starting train job", tqdm_line(JOB, 5, 10, 5, 1.0, ", lr: 1.0e-04 loss: 5.000e-01"))
    assert parser.feed(full) is True
    before = parser.state.copy()
    assert parser.feed(full[:20]) is False and parser.feed(full) is False
    assert parser.state == before and before is not parser.state
    assert parser.state.consumed == len(full) and parser.state.lines == 2


def test_carriage_returns_split_lines() -> None:
    raw = "Starting train job\r" + "\r".join(
        tqdm_line(JOB, n, 10, n, 1.0, f", lr: 1.0e-04 loss: {1 / n:.3e}") for n in range(1, 6)
    )
    parser = LogParser()
    parser.feed(raw)
    assert parser.state.step == 4  # the fifth refresh has no terminator yet
    parser.finish()
    assert parser.state.step == 5 and [s for s, _ in parser.state.losses] == [1, 2, 3, 4, 5]
    crlf = lines("Starting train job", "Loading Flux model").replace("\n", "\r\n")
    parser = LogParser()
    parser.feed(crlf[: crlf.index("\n")])  # cut between \r and \n: not an extra empty line
    parser.feed(crlf)
    parser.finish()
    assert parser.state.lines == 2 and parser.state.stage is Stage.LOADING


def test_incremental_equals_one_pass_on_a_whole_flux_run() -> None:
    whole = parse(flux_log(3000))
    parser = LogParser()
    for _, text in snapshots(flux_lines(3000), every=5.0):
        parser.feed(text)
    parser.finish()
    assert parser.state == whole
    assert len(whole.losses) == 3000 and whole.stage is Stage.SAVING


# A vocabulary for generated logs: real lines of every trainer plus hostile ones, joined by any
# terminator. Main-bar lines with odd or unreadable numbers check the bulk path against `_line`.
_FRAGMENTS = [
    "Starting train job", '"steps": 40,', "# Running job: flux_train_replicate", "Caching latents for x",
    "Extracted 3 files from zip to input_images", "Downloading weights...", "Saving at step 20",
    f"Saved to output/{JOB}/{JOB}_000000020.safetensors", f"Saved to output/{JOB}/{JOB}.safetensors",
    f"output/{JOB}/lora.safetensors", "Uploading to Hugging Face: a/b", "Traceback (most recent call last):",
    'File "t.py", line 1, in <module>', "main()", "KeyError: 'x'", "ERROR something broke",
    "step 3 is completed and loss is 0.5", "Step 7/40 loss=0.25", tqdm_line("", 3, 3, 1, 3.0),
    "Caching latents: 100%|██████████| 3/3 [00:01<00:00,  3.00it/s]", "", "flux_train_replicate:",
    f"{JOB}:  50%|█████     | 20/40 [00:20<00:20,  1.00it/s, lr: 4.0e-04 loss: abc]",
    f"{JOB}:  50%|█████     | 20/40 [00:20<00:20,  1.00it/s, lr: x loss: 0.5]",
    f"{JOB}:  50%|█████     |20/40, lr: 1e-3 loss: 7]", f"{JOB}: 5%|, lr: 1e-4 loss: a|2/40 loss: 3]",
    f"{JOB}:  50%|█████     | 20/40 [00:20<?, ?it/s]", f"{JOB}:  0%|          | 0/0 [00:00<?, ?it/s]",
    "Training Epoch1:  30%|███       | 3/10 [00:06<00:14,  2.00s/it]", "35%|███▌      | 14/40 [00:10<00:20,  1.3it/s]",
]  # fmt: skip
_main_bar_lines = st.builds(
    lambda n, total, lr, loss: tqdm_line(JOB, n, total, n, 1.0, f", lr: {lr} loss: {loss}"),
    st.integers(0, 60),
    st.sampled_from([40, 60]),
    st.sampled_from(["4.0e-04", "1.0e-04", "4e-4", "nan"]),
    st.sampled_from(["2.472e-01", "1.000e+00", "0.5", "-1", "inf", "bad"]),
)
_line_text = st.one_of(
    _main_bar_lines, _main_bar_lines, _main_bar_lines, st.sampled_from(_FRAGMENTS), st.text(max_size=12)
)
_log = st.lists(st.tuples(_line_text, st.sampled_from(["\n", "\n", "\r", "\r\n"])), max_size=60).map(
    lambda parts: "".join(text + end for text, end in parts)
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=_log,
    tail=st.text(max_size=8),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    configured=st.sampled_from([None, 40]),
)
def test_any_sequence_of_prefixes_equals_one_pass(log: str, tail: str, cuts: list[int], configured: int | None) -> None:
    log += tail  # an unterminated last line
    expected = parse(log, configured)
    parser = LogParser(configured)
    for cut in cuts:  # in any order: shorter logs than already read are ignored
        parser.feed(log[: cut % (len(log) + 1)])
    parser.feed(log)
    parser.finish()
    assert parser.state == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=_log)
def test_line_by_line_equals_bulk(log: str) -> None:
    """Each feed adds one line, so runs of main-bar lines never reach the bulk path."""
    expected = parse(log)
    parser = LogParser()
    normalized = log.replace("\r\n", "\n").replace("\r", "\n")
    position = 0
    for piece in normalized.split("\n")[:-1]:
        position += len(piece) + 1
        parser.feed(normalized[:position])
    parser.finish()
    # `consumed` counts characters, and "\r\n" was normalized to one
    assert replace(parser.state, consumed=0) == replace(expected, consumed=0)


def _simulated(trainer_name: str, script: str, given: dict[str, object], rows: int | None = None) -> str:
    """A script's whole log as the simulator serves it (Cog strips each line)."""
    import random as _random

    from simulator.records import TrainingRecord
    from simulator.schemas import TRAINERS
    from simulator.scripts import SCRIPTS, Emit, ScriptContext

    trainer = TRAINERS[trainer_name]
    ctx = ScriptContext(trainer=trainer, input=given, rng=_random.Random(1), start_time=0.0, text_rows=rows)
    record = TrainingRecord(id="t", seq=0, trainer=trainer, destination="me/m", input=given, script=script,
                            rng=_random.Random(1), created_at=0.0)
    for event in SCRIPTS[script].factory(ctx):
        if isinstance(event, Emit):
            record.append(list(event.lines))
    return record.logs


def _long_llm_log() -> str:
    """cog-llama-template's 4-GPU output: one run of bar and step lines far longer than a bulk
    chunk (`RUN_CHUNK`)."""
    return _simulated("meta/llama-2-7b", "llama", {"num_train_epochs": 2}, rows=12_000)


def _diffusers_decaying_lr() -> str:
    """diffusers' `Steps:` bar (huggingface/diffusers@5700e52 train_dreambooth_lora_flux.py:
    update(1), then set_postfix(loss=…, lr=…)) with an lr that changes every 50 steps."""
    log = _simulated("ostris/flux-dev-lora-trainer", "diffusers", {"steps": 3000})
    out, step = [], 0
    for line in log.split("\n"):
        if line.startswith("Steps:") and ", lr=" in line:
            step = int(line.split("/", 1)[0].rsplit(" ", 1)[-1])
            line = line.replace(", lr=0.0004]", f", lr={4e-4 * 0.9 ** (step // 50):.3g}]")
        out.append(line)
    return "\n".join(out)


def _longest_run(log: str, starts: tuple[str, ...]) -> int:
    """Characters in the longest stretch of lines that all begin with one of `starts`."""
    longest = current = 0
    for line in log.replace("\r", "\n").split("\n"):
        current = current + len(line) + 1 if line.startswith(starts) else 0
        longest = max(longest, current)
    return longest


_FLUX_LONG_RUNS = {"save_every": 10_000}


@pytest.mark.parametrize(("make", "starts"), [
    (lambda: flux_log(2000, **_FLUX_LONG_RUNS), (JOB,)),
    (lambda: flux_log(2000, **_FLUX_LONG_RUNS).replace("\n", "\r"), (JOB,)),
    (_long_llm_log, ("Training Epoch", "step ")),
    (lambda: _simulated("ostris/flux-dev-lora-trainer", "diffusers", {"steps": 3000}), ("Steps:",)),
    (_diffusers_decaying_lr, ("Steps:",)),
], ids=["flux", "flux raw \\r", "llm 4 GPUs", "diffusers", "diffusers, lr decaying"])  # fmt: skip
def test_runs_longer_than_a_bulk_chunk_read_as_line_by_line(make: Callable[[], str], starts: tuple[str, ...]) -> None:
    """A long run is read in chunks; three lines per feed never reach the bulk path."""
    from core.logparse import RUN_CHUNK

    log = make()
    assert _longest_run(log, starts) > 3 * RUN_CHUNK
    expected = parse(log)
    normalized = log.replace("\r", "\n")
    parser, position = LogParser(), 0
    while (position := normalized.find("\n", normalized.find("\n", normalized.find("\n", position) + 1) + 1) + 1) > 0:
        parser.feed(normalized[:position])
    parser.feed(normalized)
    parser.finish()
    assert parser.state.losses and parser.state.step == expected.step
    assert replace(parser.state, consumed=0) == replace(expected, consumed=0)
