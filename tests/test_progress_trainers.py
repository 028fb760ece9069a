"""Regression tests on the trainers people really run, from logs rebuilt out of their own print
statements (tests/fixtures/trainers/, each file's first line names the source: repository, commit,
files), and the same expectations applied to what the simulator prints for each family."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.logparse import LogParser, LogState, Stage
from core.models import Status
from core.progress import GUESS_CAP, ProgressTracker

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "trainers"
T0 = datetime(2024, 9, 10, 5, 10, 0, tzinfo=timezone.utc)
FINISHING = (Stage.SAVING, Stage.UPLOADING)


def fixture(name: str) -> str:
    """A fixture without its `# source:` line (kept byte for byte: raw `\\r` included)."""
    text = (FIXTURES / name).read_bytes().decode("utf-8")  # read_text would turn every `\r` into `\n`
    assert text.startswith("# source: "), f"{name} must say where its format comes from"
    return text.split("\n", 1)[1]


def parse(text: str, configured: int | None = None) -> LogState:
    parser = LogParser(configured)
    parser.feed(text)
    parser.finish()
    return parser.state


def upto(text: str, marker: str, *, including: bool = True) -> str:
    """The log through the first line containing `marker` (or just before it)."""
    at = text.index(marker)
    end = text.find("\n", at)
    return text[: end + 1] if including else text[: text.rfind("\n", 0, at) + 1]


def split_lines(text: str) -> list[str]:
    """Cumulative prefixes of the log at every line end (`\\r` or `\\n`)."""
    ends = [i + 1 for i, ch in enumerate(text) if ch in "\r\n"]
    return [text[:end] for end in ends]


# --- what every family must satisfy (fixtures and simulator alike) -----------------------------
@dataclass(frozen=True)
class Family:
    name: str
    total: int  # the whole run's steps
    overshoot: int = 0  # how far past the total the bar may count (cog-sdxl runs whole epochs)
    has_loss: bool = True
    mid_run_saves: tuple[str, ...] = ()  # lines that save in the middle of training
    not_training: tuple[str, ...] = ()  # starts of bar lines that must never move the step


def check_family(log: str, family: Family, *, configured: int | None = None, final: bool = True) -> LogState:
    """Feed the log line by line and check, at every line: the step never goes back nor past the
    total; a finishing stage only once the training bar reached its last step; a mid-run save or a
    sampling/eval bar leaves stage and step alone. Then the whole log's final state."""
    parser = LogParser(configured)
    previous_step: int | None = None
    previous_stage = Stage.QUEUED
    for prefix in split_lines(log):
        before = parser.state.copy()
        parser.feed(prefix)
        state = parser.state
        line = prefix[before.consumed :]
        if state.step is not None:
            assert previous_step is None or state.step >= previous_step, f"step went back at {line!r}"
            assert state.total_steps is not None and state.step <= state.total_steps + family.overshoot, line
            previous_step = state.step
        assert state.stage.order >= previous_stage.order, f"stage went back at {line!r}"
        previous_stage = state.stage
        if state.stage in FINISHING and state.step is not None and state.total_steps:
            assert state.step >= state.total_steps - 1, f"finishing before the end of training at {line!r}"
        if any(marker in line for marker in family.mid_run_saves) and before.stage is Stage.TRAINING:
            if before.step is not None and before.total_steps and before.step < before.total_steps - 1:
                assert state.stage is Stage.TRAINING, f"a mid-run save ended training: {line!r}"
        if line.lstrip().startswith(family.not_training):
            assert (state.step, state.total_steps) == (before.step, before.total_steps), f"counted {line!r}"
    parser.finish()
    state = parser.state
    assert state == parse(log, configured), "line by line must equal one pass"
    if final:
        assert state.stage in FINISHING
        assert state.total_steps == family.total
        assert state.step is not None and family.total - 1 <= state.step <= family.total + family.overshoot
        assert state.train_percent is not None and state.train_percent >= 100 * (family.total - 1) / family.total
        if family.has_loss:
            assert len(state.losses) >= family.total - 1 and state.loss is not None
    return state


FLUX = Family("flux", 12, mid_run_saves=("Saved to", "Saving weights to W&B", "Saving at step"),
              not_training=("Generating Images",))
QWEN = Family("qwen", 10)
SDXL = Family("sdxl", 10, overshoot=2, has_loss=False, not_training=("0it [", "7it [", "12it [", "100%|"))
LLM = Family("llm", 10, mid_run_saves=("save the PEFT modules", "PEFT modules are saved"),
             not_training=("evaluating Epoch",))
DIFFUSERS = Family("diffusers", 10, mid_run_saves=("checkpoint-5",))
FAMILY_FIXTURES = {
    "flux-wandb.txt": FLUX,
    "qwen-image-raw.txt": QWEN,
    "sdxl.txt": SDXL,
    "llm-4gpu.txt": LLM,
    "diffusers-dreambooth-lora.txt": DIFFUSERS,
}


@pytest.mark.parametrize("name", sorted(FAMILY_FIXTURES))
def test_family_expectations_on_the_rebuilt_logs(name: str) -> None:
    check_family(fixture(name), FAMILY_FIXTURES[name])


# --- flux / ai-toolkit ---------------------------------------------------------------------------
def test_flux_mid_run_save_is_not_finishing_and_sampling_is_not_training() -> None:
    """replicate/flux-fine-tuner@3dd14e3 on ostris/ai-toolkit@bedb819: with W&B every save prints
    `Saved to output/<job>/optimizer.pt` then `Saving weights to W&B: …`; sampling draws a nested
    `Generating Images` bar (`\\x1b[A`) while the main bar stays at step − 1."""
    log = fixture("flux-wandb.txt")
    sampling = parse(upto(log, "Generating Images:  50%|█████     | 1/2 [00:09<00:09,  9.50s/it]\x1b[A"))
    assert (sampling.stage, sampling.step, sampling.total_steps) == (Stage.TRAINING, 3, 12)
    saved = parse(upto(log, "Saving weights to W&B: flux_train_replicate_000000004"))
    assert (saved.stage, saved.step) == (Stage.TRAINING, 3)
    assert parse(upto(log, "flux_train_replicate_000000008")).stage is Stage.TRAINING
    end = parse(log)
    assert (end.stage, end.step, end.total_steps) == (Stage.SAVING, 11, 12)  # the bar ends at 11/12
    before_final_save = parse(upto(log, "Saving weights to W&B: flux_train_replicate.safetensors", including=False))
    assert before_final_save.stage is Stage.SAVING  # `Saved to` after the last step: saving


def test_ai_toolkit_qwen_raw_output() -> None:
    """replicate/qwen-image-lora-trainer@09386ee on ostris/ai-toolkit@1755e58, raw `\\r`, indented
    config, colour codes in the cells, a warning glued onto a refresh; `Saved checkpoint to` /
    `Saved optimizer to` after the last step are saving."""
    log = fixture("qwen-image-raw.txt")
    start = parse(upto(log, "Model Loaded"))
    assert start.stage is Stage.LOADING and start.total_steps == 10 and start.step is None
    mid = parse(log[: log.index("UserWarning")])
    assert (mid.stage, mid.step, mid.total_steps) == (Stage.TRAINING, 3, 10)
    state = parse(log)
    assert (state.stage, state.step) == (Stage.SAVING, 9)
    assert [s for s, _ in state.losses] == list(range(1, 10)) and state.lr == pytest.approx(4e-4)


def test_silent_trainer_is_loading_until_its_wrapper_says_it_finished() -> None:
    """replicate/qwen-image-lora-trainer@aa0343f captured its trainer's output: nothing to count."""
    running = parse(fixture("qwen-image-silent-start.txt"))
    assert running.stage is Stage.LOADING and running.opaque and running.step is None
    done = parse(fixture("qwen-image-silent-end.txt"))
    assert done.stage is Stage.SAVING


# --- SDXL -------------------------------------------------------------------------------------------
def test_sdxl_per_step_descriptions_are_one_bar() -> None:
    """replicate/cog-sdxl@c79cb3c trainer_pti.py: set_description(f"# PTI :step: {global_step},
    epoch: {epoch}") every step on ONE tqdm over max_train_steps."""
    line = "# PTI :step: 349, epoch: 116:  35%|███▌      | 350/1000 [02:10<04:02,  2.68it/s]\n"
    header = "# PTI :  Total optimization steps = 1000\n"
    tracker = ProgressTracker()
    progress = tracker.update(header + line, Status.PROCESSING, now=T0, started_at=T0, created_at=None)
    assert (progress.step, progress.total_steps, progress.overall_percent) == (350, 1000, 39.75)
    state = parse(header + line + line.replace("349", "350").replace("350/1000", "351/1000"))
    assert (state.step, state.total_steps) == (351, 1000)


def test_sdxl_run_ends_past_its_total_and_says_so_plainly() -> None:
    log = fixture("sdxl.txt")
    first = parse(upto(log, "downloading to:  ./blip-processor-cache"))
    assert first.stage is Stage.PREPARING  # downloads inside preprocessing stay there
    assert parse("downloading url:  https://weights.replicate.delivery/default/sdxl/sdxl-vae-upcast-fix.tar\n").stage is Stage.DOWNLOADING
    masks = parse(upto(log, "7it [00:04,  1.62it/s]"))
    assert masks.stage is Stage.PREPARING and masks.step is None
    state = parse(log)
    assert (state.step, state.total_steps, state.train_percent) == (12, 10, 100.0)
    assert state.stage is Stage.SAVING and state.losses == []


# --- LLM ----------------------------------------------------------------------------------------------
def test_llm_total_from_the_printed_arguments() -> None:
    """replicate/cog-llama-template@845e24f: set length 40, batch 2, 4 processes, 2 epochs: each
    process takes ceil(40/4) = 10 examples, in whole batches of 2 → 5 steps per epoch, 10 in all."""
    log = fixture("llm-4gpu.txt")
    before_bars = parse(upto(log, "Training Set Length"))
    assert before_bars.total_steps == 10 and before_bars.step is None
    assert before_bars.stage is Stage.LOADING


def test_llm_interleaved_ranks_eval_bars_peft_saves_and_tensor_losses() -> None:
    log = fixture("llm-4gpu.txt")
    epoch0 = parse(upto(log, "PEFT modules are saved in training_output directory"))
    assert (epoch0.stage, epoch0.step, epoch0.total_steps) == (Stage.TRAINING, 5, 10)  # not finishing
    assert epoch0.loss == pytest.approx(1.4) and [s for s, _ in epoch0.losses] == [1, 2, 3, 4, 5]
    late = parse(upto(log, "Training Epoch1:   0%"))  # the next epoch starts; a late closing line follows
    assert late.step == 5
    state = parse(log)
    assert (state.stage, state.step, state.total_steps) == (Stage.SAVING, 10, 10)
    assert state.losses[0] == (1, pytest.approx(1.6)) and len(state.losses) == 10


# --- diffusers ----------------------------------------------------------------------------------------
def test_diffusers_steps_bar_and_mid_run_checkpoints() -> None:
    """huggingface/diffusers@5700e52 train_dreambooth_lora_flux.py: `Steps` bar with loss/lr postfix;
    accelerate's checkpoint-N saves in the middle are not finishing."""
    log = fixture("diffusers-dreambooth-lora.txt")
    mid = parse(upto(log, "Saved state to trained-flux-lora/checkpoint-5"))
    assert (mid.stage, mid.step, mid.total_steps) == (Stage.TRAINING, 5, 10)
    state = parse(log)
    assert state.stage is Stage.SAVING and state.losses[-1] == (10, pytest.approx(0.35))
    assert state.lr == pytest.approx(1e-4)


def test_diffusers_model_shards_after_the_wrappers_preparation_are_loading() -> None:
    """lucataco/cog-diffusers-dreambooth-lora@a0614e1 predict.py extracts the images first
    (`Extracted N files from zip`), then runs train_dreambooth_lora_flux.py (huggingface/diffusers@5700e52,
    line 1062: `logger.info(accelerator.state, main_process_only=False)`), whose state prints
    `Distributed environment: …` (huggingface/accelerate@16cb6eb8 src/accelerate/state.py); the
    T5 shards it then loads are the model, not a captioner (LLaVA's, after an extraction in the
    flux trainer, are)."""
    log = "".join(line + "\n" for line in (
        "Extracted 18 files from zip to input_images",
        "11/29/2026 02:18:21 - INFO - __main__ - Distributed environment: DistributedType.NO",
        "Num processes: 1",
        "Loading checkpoint shards:  50%|█████     | 1/2 [00:01<00:01,  1.60s/it]",
    ))
    assert parse(log).stage is Stage.LOADING
    assert parse(log.split("11/29")[0]).stage is Stage.PREPARING


# --- the seed's examples --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line", ["150/1000", "step 150/1000", " 15%|█▌ | 150/1000 [01:02<05:50, 2.43it/s]"]
)
def test_a_lone_line_with_nothing_before_it(line: str) -> None:
    progress = ProgressTracker().update(line + "\n", Status.PROCESSING, now=T0, started_at=T0, created_at=None)
    assert (progress.step, progress.total_steps, progress.overall_percent) == (150, 1000, 22.75)


# --- nothing locks a wrong value -------------------------------------------------------------------------
def pieces(text: str, rng: random.Random) -> list[str]:
    """Cumulative logs cut at random places (the way polls and webhooks see a log grow)."""
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(5, 60))))
    return [text[:cut] for cut in cuts] + [text]


@pytest.mark.parametrize("name", sorted(FAMILY_FIXTURES) + ["qwen-image-silent-end.txt"])
@pytest.mark.parametrize("seed", range(6))
def test_random_pieces_are_monotonic_and_end_where_one_parse_ends(name: str, seed: int) -> None:
    log = fixture(name)
    rng = random.Random(seed)
    tracker = ProgressTracker()
    seen: list[float] = []
    now = T0
    for text in pieces(log, rng):
        now += timedelta(seconds=rng.uniform(0.5, 5))
        progress = tracker.update(text, Status.PROCESSING, now=now, started_at=T0, created_at=None)
        seen.append(progress.overall_percent)
    assert seen == sorted(seen), f"overall progress went back: {seen}"
    whole = ProgressTracker().update(log, Status.PROCESSING, now=now, started_at=T0, created_at=None)
    assert progress.overall_percent == whole.overall_percent
    assert (progress.stage, progress.step, progress.total_steps) == (whole.stage, whole.step, whole.total_steps)


# --- a trainer that prints nothing ---------------------------------------------------------------------
def test_silent_trainer_is_a_capped_guess_without_history() -> None:
    log = fixture("qwen-image-silent-start.txt")
    tracker = ProgressTracker()
    early = tracker.update(log, Status.PROCESSING, now=T0 + timedelta(seconds=120), started_at=T0, created_at=None)
    assert early.overall_percent == pytest.approx(14.05, abs=0.1) and early.estimated
    late = tracker.estimate(T0 + timedelta(hours=3))
    assert late.overall_percent == GUESS_CAP and late.estimated and late.eta_seconds is None
    done = tracker.update(fixture("qwen-image-silent-end.txt"), Status.PROCESSING,
                          now=T0 + timedelta(hours=3, seconds=1), started_at=T0, created_at=None)
    assert done.overall_percent == 95.0 and not done.estimated


def test_silent_trainer_with_history_follows_the_earlier_runs() -> None:
    log = fixture("qwen-image-silent-start.txt")
    tracker = ProgressTracker(history=[1800.0, 2000.0, 2200.0])  # typical: 2,000 s
    half = tracker.update(log, Status.PROCESSING, now=T0 + timedelta(seconds=1000), started_at=T0, created_at=None)
    assert half.overall_percent == 50.0 and not half.estimated and half.eta_seconds == 1000.0
    later = tracker.estimate(T0 + timedelta(seconds=1700))
    assert later.overall_percent == 85.0 and later.eta_seconds == 300.0


# --- the simulator prints what the trainers print ------------------------------------------------
DATA = "https://replicate.delivery/pbxt/test/"
SIMULATED = {
    "flux (W&B: mid-run saves, sampling)": (
        "ostris/flux-dev-lora-trainer", "flux",
        {"input_images": DATA + "a.zip", "steps": 40, "wandb_api_key": "k", "wandb_sample_interval": 10,
         "wandb_save_interval": 10}, Family("flux", 40, mid_run_saves=FLUX.mid_run_saves, not_training=FLUX.not_training)),
    "flux on the newest runtime (raw \\r)": (
        "ostris/flux-dev-lora-trainer", "flux-raw",
        {"input_images": DATA + "a.zip", "steps": 30, "wandb_api_key": "k", "wandb_sample_interval": 10,
         "wandb_save_interval": 15}, Family("flux", 30, mid_run_saves=FLUX.mid_run_saves, not_training=FLUX.not_training)),
    "sdxl": ("stability-ai/sdxl", "sdxl", {"input_images": DATA + "a.zip", "max_train_steps": 25},
             Family("sdxl", 25, overshoot=8, has_loss=False, not_training=SDXL.not_training)),
    "llm, 4 GPUs, validation": ("meta/llama-2-7b", "llama", {"train_data": DATA + "a.jsonl", "num_train_epochs": 2},
                                Family("llm", 144, mid_run_saves=LLM.mid_run_saves, not_training=LLM.not_training)),
    "llm, no validation (late closing lines)": (
        "meta/llama-2-7b", "llama", {"train_data": DATA + "a.jsonl", "num_train_epochs": 2, "run_validation": False},
        Family("llm", 150, not_training=LLM.not_training)),
    "qwen on the newest runtime (raw \\r, colour, empty sampling)": (
        "replicate/qwen-image-lora-trainer", "qwen", {"dataset": DATA + "a.zip", "steps": 100},
        Family("qwen", 100, not_training=("Generating Images", "Loading checkpoint shards"))),
    "diffusers DreamBooth (mid-run checkpoints, final pipeline)": (
        "ostris/flux-dev-lora-trainer", "diffusers", {"input_images": DATA + "a.zip", "steps": 30, "checkpointing_steps": 10},
        Family("diffusers", 30, mid_run_saves=("checkpoint-",),
               not_training=("Loading checkpoint shards", "Loading pipeline components"))),
}


@pytest.mark.parametrize("case", sorted(SIMULATED))
def test_simulated_logs_meet_the_same_expectations(case: str) -> None:
    from simulator import Simulator

    trainer, script, given, family = SIMULATED[case]
    sim = Simulator(speed=50, seed=3)
    sim.add_model("me/model")
    training = sim.add_finished_training(trainer, "me/model", given, script=script, ended_ago=60)
    assert training["status"] == "succeeded"
    log = training["logs"]
    from core.progress import steps_from_input

    state = check_family(log, family, configured=steps_from_input(given))
    if script == "flux-raw":
        assert "\r" in log and '    "steps": 30,' in log  # raw refreshes and the config's indentation
    if trainer == "meta/llama-2-7b":
        assert "\x1b[34m" in log and "tensor(" in log and state.losses
    if script == "qwen":  # raw refreshes, the config's indentation, blue cells, the wrapper's lines
        assert "\r" in log and '        "steps": 100,' in log and "|\x1b[34m" in log and "INFO:__main__:Training completed" in log
    if script == "diffusers":
        assert "Steps: 100%|" in log and ", loss=" in log and state.lr == pytest.approx(4e-4)
    for seed in range(2):
        rng = random.Random(seed)
        tracker, seen, now = ProgressTracker(configured_steps=steps_from_input(given)), [], T0
        for text in pieces(log, rng):
            now += timedelta(seconds=rng.uniform(0.5, 5))
            seen.append(tracker.update(text, Status.PROCESSING, now=now, started_at=T0, created_at=None).overall_percent)
        assert seen == sorted(seen)
