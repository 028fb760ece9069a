"""Trainer log scripts: what each real trainer prints, stage by stage, with realistic timing.

A script is a generator of events: `Emit` (wait `delay` simulated seconds, then print lines),
then one `Succeed` or `Fail`. Scripts only describe; the simulator decides how fast simulated
time passes (its `speed`), or fast-forwards a whole script at once for past trainings. Every
random choice comes from the training's own `random.Random`, so a seed replays the same log.

Lines are written as the trainer prints them, read in each trainer's source (named above each
script); the simulator then does what Cog does to logs (strip each line, drop empty ones), which is
why tracebacks and JSON dumps end up flush left. A `RawText` piece is passed through as the newest
Cog runtime does (tqdm's `\r` refreshes on one line, indentation kept).

Timing follows the real runs: step times that vary (resolution buckets, the odd slow step),
sampling pauses that the trainer's own bar does not count, checkpoint saves and uploads, and the
platform's upload of the weights after the last line.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tqdm import tqdm

from .formats import pget_time
from .progress_bars import SmoothedRate, meter
from .records import RawText
from .schemas import TRAINERS, Trainer, input_value


@dataclass(frozen=True)
class Emit:
    delay: float  # simulated seconds to wait before printing
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Succeed:
    delay: float


@dataclass(frozen=True)
class Fail:
    delay: float
    lines: tuple[str, ...]  # the traceback
    error: str  # what the training object's `error` says


ScriptEvent = Emit | Succeed | Fail


@dataclass
class ScriptContext:
    trainer: Trainer
    input: dict[str, Any]
    rng: random.Random
    start_time: float  # wall-clock epoch when the training started processing
    time_scale: float = 1.0  # wall seconds per simulated second (1 / speed)
    images: list[str] | None = None  # file names inside an uploaded zip, when known
    text_rows: int | None = None  # rows of an uploaded JSONL, when known
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        return input_value(self.trainer, self.input, name)


class _Timeline:
    """Tracks simulated time inside a script so timestamps and tqdm clocks agree."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self.elapsed = 0.0
        self._pending = 0.0

    def wait(self, seconds: float) -> None:
        self.elapsed += seconds
        self._pending += seconds

    def out(self, *lines: str) -> Emit:
        event = Emit(self._pending, tuple(lines))
        self._pending = 0.0
        return event

    def succeed(self) -> Succeed:
        event = Succeed(self._pending)
        self._pending = 0.0
        return event

    def uploaded(self, seconds: float) -> Succeed:
        """The end of a successful run: the platform uploads the weights, printing nothing."""
        self.wait(seconds)
        return self.succeed()

    def fail(self, lines: list[str], error: str) -> Fail:
        event = Fail(self._pending, tuple(lines), error)
        self._pending = 0.0
        return event

    def now(self) -> float:
        return self.ctx.start_time + self.elapsed * self.ctx.time_scale

    def meter(self, n: int, total: int | None, elapsed: float, rate: float | None, **options: str) -> str:
        """A tqdm refresh as an observer sees it: at speed 10 the trainer looks like a 10x faster
        GPU, so its own elapsed<remaining and rate agree with the wall clock (and the ETA)."""
        scale = self.ctx.time_scale
        return meter(n, total, elapsed * scale, rate / scale if rate else rate, **options)  # type: ignore[arg-type]


def _refresh(text: str, raw: bool) -> str:
    """One tqdm refresh: a line of its own as the older Cog runtimes log it, or `\\r` and the line
    as the newest passes it through (tqdm writes no newline until the bar closes)."""
    return RawText("\r" + text) if raw else text


def _say(tl: _Timeline, raw: bool, *lines: str) -> Emit:
    """`print` of each line; on the newest runtime as written (indentation and empty lines kept)."""
    return tl.out(RawText("".join(f"{line}\n" for line in lines))) if raw else tl.out(*lines)


def _bar_run(
    tl: _Timeline,
    total: int,
    seconds_per_item: float,
    *,
    desc: str = "",
    refresh: float = 0.1,
    jitter: float = 0.15,
    raw: bool = False,
    close: bool = False,
    nested: bool = False,
) -> Iterator[Emit]:
    """A short tqdm bar (preprocessing, shard loading): first line, refreshes ≥ `refresh` s apart, last.
    `close`: then tqdm's `close()`, which draws the bar once more with the overall rate (raw: and
    ends its line). `nested`: opened while another bar is, so each refresh ends in a cursor-up."""
    rng = tl.ctx.rng
    rate = SmoothedRate()
    up = "\x1b[A" if nested else ""
    yield tl.out(_refresh(tl.meter(0, total, 0.0, None, desc=desc) + up, raw))
    started, last_print, current = 0.0, 0.0, None
    for n in range(1, total + 1):
        dt = max(1e-4, seconds_per_item * rng.uniform(1 - jitter, 1 + jitter))
        started += dt
        tl.wait(dt)
        current = rate.update(1, dt)
        if n == total or started - last_print >= refresh:
            last_print = started
            yield tl.out(_refresh(tl.meter(n, total, started, current, desc=desc) + up, raw))
    if close or raw:
        closing = _refresh(tl.meter(total, total, started, total / started, desc=desc), raw)
        yield tl.out(RawText(closing + "\n") if raw else closing)


def _float32(value: float) -> str:
    """How PyTorch prints a float32 loss through `float()`: the full double repr of a float32."""
    return repr(struct.unpack("f", struct.pack("f", value))[0])


def _decaying_loss(rng: random.Random, step: int, total: int, start: float, floor: float, noise: float) -> float:
    trend = floor + (start - floor) * math.exp(-3.0 * step / max(1, total))
    return max(1e-4, trend * rng.lognormvariate(0.0, noise))


def _flush_left_json(data: Any) -> list[str]:
    return json.dumps(data, indent=2).splitlines()


def _lora_inputs(ctx: ScriptContext) -> tuple[int, int, float, int, list[str]]:
    """An image LoRA trainer's steps, lora_rank, learning_rate, batch_size, and the zip's images."""
    images = ctx.images if ctx.images else _default_images(ctx.rng)
    return (int(ctx.value("steps")), int(ctx.value("lora_rank")), float(ctx.value("learning_rate")),
            int(ctx.value("batch_size")), images)


def _default_images(rng: random.Random) -> list[str]:
    count = rng.randint(8, 20)
    stem = rng.choice(["IMG_", "photo_", "DSC0", "image-"])
    first = rng.randint(1, 4000)
    return [f"{stem}{first + i:04d}.{rng.choice(['jpg', 'jpeg', 'png'])}" for i in range(count)]


# ---- ostris/flux-dev-lora-trainer ----------------------------------------------------------------

FLUX_JOB = "flux_train_replicate"
FLUX_WEIGHTS_URL = "https://weights.replicate.delivery/default/black-forest-labs/FLUX.1-dev/files.tar"

_CAPTION_SUBJECTS = [
    "a person standing in front of a brick wall",
    "a close-up portrait with soft window light",
    "a dog sitting on a wooden porch",
    "a smiling woman wearing a denim jacket",
    "a man in a grey hoodie looking at the camera",
    "a ceramic mug on a kitchen counter",
    "a watercolor illustration of a mountain lake",
    "a person hiking on a rocky trail at sunset",
]
_CAPTION_DETAILS = [
    "The background is slightly blurred.",
    "The lighting is warm and natural.",
    "The image has a shallow depth of field.",
    "The colors are muted with a film-like grain.",
    "The scene is photographed from a low angle.",
]


def flux(ctx: ScriptContext, failure: str | None = None, raw: bool = False) -> Iterator[ScriptEvent]:
    """replicate/flux-fine-tuner@3dd14e3 (train.py) on ostris/ai-toolkit@bedb819
    (jobs/process/BaseSDTrainProcess.py). `raw`: on the newest Cog runtime, which passes tqdm's `\\r`
    refreshes and the config's indentation through."""
    rng, tl = ctx.rng, _Timeline(ctx)
    trigger = str(ctx.value("trigger_word"))
    resolutions = _resolutions(str(ctx.value("resolution")))
    steps, rank, learning_rate, batch_size, images = _lora_inputs(ctx)
    wandb = bool(ctx.value("wandb_api_key"))
    prompts = [p.strip() for p in str(ctx.value("wandb_sample_prompts") or "").split("\n") if p.strip()]
    if wandb and not prompts:
        prompts = [f"a photo of {trigger}", f"{trigger} in a forest", f"{trigger} at the beach, golden hour",
                   f"a watercolor painting of {trigger}"]  # train.py's W&B defaults, in spirit
    sampling = wandb and bool(prompts)
    sample_every = int(ctx.value("wandb_sample_interval")) if sampling else steps + 1
    save_every = int(ctx.value("wandb_save_interval")) if wandb else steps + 1

    # 1. base weights with pget
    tl.wait(rng.uniform(0.2, 0.8))
    yield tl.out(f"{pget_time(tl.now())} | INFO  | [ Initiating ] chunk_size=150M dest=. url={FLUX_WEIGHTS_URL}")
    download = rng.uniform(18.0, 34.0)
    tl.wait(download)
    yield tl.out(
        f'{pget_time(tl.now())} | INFO  | [ Complete ] dest=. size="34 GB" '
        f"total_elapsed={download:.3f}s url={FLUX_WEIGHTS_URL}"
    )
    overhead = rng.uniform(0.2, 0.6)
    tl.wait(overhead)
    yield tl.out(f"Downloaded base weights in {download + overhead!r} seconds")

    # 2. the zip of images
    tl.wait(rng.uniform(0.3, 1.5))
    yield tl.out(f"Extracted {len(images)} files from zip to input_images")

    # 3. optional captioning with LLaVA
    if ctx.value("autocaption"):
        tl.wait(rng.uniform(6.0, 12.0))
        yield from _bar_run(tl, 3, rng.uniform(3.5, 5.0), desc="Loading checkpoint shards")
        prefix = str(ctx.value("autocaption_prefix") or "")
        suffix = str(ctx.value("autocaption_suffix") or "")
        for name in images:
            tl.wait(rng.uniform(1.2, 2.6))
            caption = f"{rng.choice(_CAPTION_SUBJECTS)}. {rng.choice(_CAPTION_DETAILS)}"
            text = " ".join(part for part in (prefix.strip(), caption, suffix.strip()) if part)
            yield tl.out(f"Caption for input_images/{name}: {text}")

    # 4. the job
    tl.wait(rng.uniform(1.0, 3.0))
    config = _flux_config(ctx, steps, rank, learning_rate, batch_size, trigger, resolutions, save_every)
    config["sample"]["sample_every"] = sample_every
    config["sample"]["prompts"] = prompts
    if raw:
        yield tl.out(RawText("Starting train job\n" + json.dumps(config, indent=2) + "\nUsing EMA\n"))
    else:
        yield tl.out("Starting train job", *_flush_left_json(config), "Using EMA")
    tl.wait(rng.uniform(0.1, 0.4))
    yield tl.out(*_job_banner(FLUX_JOB))

    # 5. model load
    tl.wait(rng.uniform(0.5, 1.5))
    yield tl.out("Loading Flux model")
    tl.wait(rng.uniform(0.5, 1.0))
    yield tl.out("Loading transformer")
    if failure == "load":
        tl.wait(rng.uniform(1.0, 3.0))
        yield tl.fail(_CONFIG_TRACEBACK, _CONFIG_ERROR)
        return
    tl.wait(rng.uniform(18.0, 30.0))
    yield tl.out("Quantizing transformer")
    tl.wait(rng.uniform(14.0, 24.0))
    yield tl.out("Loading vae")
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out("Loading t5")
    yield from _bar_run(tl, 2, rng.uniform(3.0, 6.0), desc="Loading checkpoint shards")
    tl.wait(rng.uniform(1.0, 2.0))
    yield tl.out("Quantizing T5")
    tl.wait(rng.uniform(6.0, 12.0))
    yield tl.out("Loading clip")
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out("making pipe")
    tl.wait(rng.uniform(0.5, 1.5))
    yield tl.out("preparing")

    # 6. LoRA
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out(*_lora_network(rank, 494))

    # 7. datasets, once per resolution
    for size in resolutions:
        caching = ("Caching latents for input_images", " - Keeping latents in memory")
        yield from _dataset(tl, "input_images", len(images), size, then=caching)
        yield from _bar_run(tl, len(images), rng.uniform(0.25, 0.4) * (size / 1024) ** 2 + 0.05, desc="Caching latents")

    def sample(nested: bool) -> Iterator[Emit]:
        """`Generating Images` (leave=False): nested under the paused main bar, each refresh ends in
        a cursor-up code. About 40 s per sampling with 4 prompts: the main bar does not count it."""
        count = len(prompts)
        yield tl.out(tl.meter(0, count, 0.0, None, desc="Generating Images") + ("\x1b[A" if nested else ""))
        spent, rate = 0.0, SmoothedRate()
        for index in range(1, count + 1):
            dt = rng.uniform(8.5, 11.5)
            spent += dt
            tl.wait(dt)
            line = tl.meter(index, count, spent, rate.update(1, dt), desc="Generating Images")
            yield tl.out(line + ("\x1b[A" if nested else ""))

    # 8–9. the training loop: ai-toolkit's bar shows `step` after iteration `step` (0 … steps−1)
    if sampling:
        tl.wait(rng.uniform(1.0, 2.0))
        yield tl.out("Generating baseline samples before training")
        yield from sample(nested=False)
    tl.wait(rng.uniform(1.0, 3.0))
    seconds_per_step = rng.uniform(0.92, 1.08) * (0.75 + 0.25 * batch_size)
    fail_at = max(1, int(steps * rng.uniform(0.25, 0.45))) if failure == "oom" else None
    rate = SmoothedRate()
    yield tl.out(_refresh(tl.meter(0, steps, 0.0, None, desc=FLUX_JOB), raw))
    bar_elapsed = 0.0  # the bar's clock: ToolkitProgressBar leaves its pauses out
    postfix = ""
    for step in range(steps):
        dt = _step_seconds(rng, step, seconds_per_step, resolutions)
        tl.wait(dt)
        bar_elapsed += dt
        loss = _decaying_loss(rng, step, steps, start=0.62, floor=0.3, noise=0.2)
        postfix = f"lr: {learning_rate:.1e} loss: {loss:.3e}"
        if step == fail_at:
            tl.wait(rng.uniform(0.2, 0.8))
            error = _oom_error(rng)
            yield tl.fail(_oom_traceback(error), error)
            return
        if step:
            if step % sample_every == 0:
                yield from sample(nested=True)
            if step % save_every == 0:
                shown = _refresh(tl.meter(step - 1, steps, bar_elapsed - dt, rate.peek(), desc=FLUX_JOB, postfix=postfix), raw)
                tl.wait(0.05)
                yield tl.out(f"Saving at step {step}", shown)  # tqdm.write: the message, the bar again
                tl.wait(rng.uniform(3.0, 6.0))
                yield tl.out(f"Saved to output/{FLUX_JOB}/optimizer.pt", shown)
                if wandb:
                    yield tl.out(f"Saving weights to W&B: {FLUX_JOB}_{step:09d}.safetensors")
                    tl.wait(rng.uniform(2.0, 5.0))
        yield tl.out(_refresh(tl.meter(step, steps, bar_elapsed, rate.update(1, dt), desc=FLUX_JOB, postfix=postfix), raw))

    # 10. the end: the bar stays at steps−1, a last sample, the final save, the tarball, uploads
    yield tl.out(_refresh(tl.meter(steps - 1, steps, bar_elapsed, rate.peek(), desc=FLUX_JOB, postfix=postfix), raw))
    if sampling:
        yield from sample(nested=False)
    tl.wait(rng.uniform(3.0, 6.0))
    yield tl.out(f"Saved to output/{FLUX_JOB}/optimizer.pt")
    if wandb:
        yield tl.out(f"Saving weights to W&B: {FLUX_JOB}.safetensors")
        tl.wait(rng.uniform(2.0, 5.0))
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out(
        f"output/{FLUX_JOB}/",
        f"output/{FLUX_JOB}/lora.safetensors",
        f"output/{FLUX_JOB}/config.yaml",
        f"output/{FLUX_JOB}/captions/",
        *(f"output/{FLUX_JOB}/captions/{name.rsplit('.', 1)[0]}.txt" for name in images[:3]),
    )
    if repo := ctx.value("hf_repo_id"):
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.out(f"Uploading to Hugging Face: {repo}", f"HF Repo URL: https://huggingface.co/{repo}")
        tl.wait(rng.uniform(5.0, 15.0))
    yield tl.uploaded(rng.uniform(6.0, 15.0))


def _resolutions(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if part.isdigit() and 64 <= int(part) <= 4096:
            sizes.append(int(part))
    return sizes or [512, 768, 1024]


def _job_banner(job: str) -> tuple[str, ...]:
    """jobs/BaseJob.py's banner, then ExtensionJob's process count (ai-toolkit)."""
    banner = "#" * 45
    return banner, f"# Running job: {job}", banner, "", "", "Running  1 process"


def _lora_network(rank: int, modules: int) -> tuple[str, ...]:
    """toolkit/lora_special.py creating the LoRA: only the transformer's blocks, no text encoder."""
    return (
        f"create LoRA network. base dim (rank): {rank}, alpha: {rank}",
        "neuron dropout: p=None, rank dropout: p=None, module dropout: p=None",
        "create LoRA for Text Encoder: 0 modules.",
        f"create LoRA for U-Net: {modules} modules.",
        "enable LoRA for U-Net",
    )


def _dataset(
    tl: _Timeline, folder: str, count: int, size: int, *, raw: bool = False, then: tuple[str, ...] = ()
) -> Iterator[Emit]:
    """ai-toolkit's dataset at one resolution (toolkit/data_loader.py, dataloader_mixins.py): image
    sizes read in a bar, then the buckets (one, square); `then`: what it prints next."""
    rng = tl.ctx.rng
    tl.wait(rng.uniform(0.2, 0.6))
    yield _say(tl, raw, f"Dataset: {folder}", "  -  Preprocessing image dimensions")
    yield from _bar_run(tl, count, rng.uniform(0.0006, 0.0012), raw=raw)
    yield _say(
        tl, raw, f"  -  Found {count} images", f"Bucket sizes for {folder}:", f"{size}x{size}: {count} files",
        "1 buckets made", *then,
    )


def _step_seconds(rng: random.Random, step: int, seconds_per_step: float, resolutions: list[int]) -> float:
    """One ai-toolkit step: each draws one bucket, and smaller images train faster."""
    size = rng.choice(resolutions)
    dt = seconds_per_step * (size / 1024) ** 1.5 / (sum((r / 1024) ** 1.5 for r in resolutions) / len(resolutions))
    dt *= rng.gauss(1.0, 0.05)
    if step == 0:
        dt += rng.uniform(2.0, 4.0)  # first step: compile and warm-up
    elif rng.random() < 0.02:
        dt += rng.uniform(0.3, 1.2)  # the odd slow step
    return max(0.05, dt)


def _flux_config(
    ctx: ScriptContext,
    steps: int,
    rank: int,
    learning_rate: float,
    batch_size: int,
    trigger: str,
    resolutions: list[int],
    save_every: int,
) -> dict[str, Any]:
    return {
        "type": "custom_sd_trainer",
        "training_folder": "output",
        "device": "cuda:0",
        "trigger_word": trigger,
        "network": {"type": "lora", "linear": rank, "linear_alpha": rank},
        "save": {"dtype": "float16", "save_every": save_every, "max_step_saves_to_keep": 1},
        "datasets": [
            {
                "folder_path": "input_images",
                "caption_ext": "txt",
                "caption_dropout_rate": float(ctx.value("caption_dropout_rate")),
                "shuffle_tokens": False,
                "cache_latents_to_disk": bool(ctx.value("cache_latents_to_disk")),
                "cache_latents": True,
                "resolution": resolutions,
            }
        ],
        "train": {
            "batch_size": batch_size,
            "steps": steps,
            "gradient_accumulation_steps": 1,
            "train_unet": True,
            "train_text_encoder": False,
            "content_or_style": "balanced",
            "gradient_checkpointing": True,  # the Replicate trainer always turns it on
            "noise_scheduler": "flowmatch",
            "optimizer": str(ctx.value("optimizer")),
            "lr": learning_rate,
            "ema_config": {"use_ema": True, "ema_decay": 0.99},
            "dtype": "bf16",
        },
        "model": {"name_or_path": "FLUX.1-dev", "is_flux": True, "quantize": True},
        "sample": {
            "sampler": "flowmatch",
            "sample_every": steps + 1,
            "width": 1024,
            "height": 1024,
            "prompts": [],
            "neg": "",
            "seed": 42,
            "walk_seed": True,
            "guidance_scale": 3.5,
            "sample_steps": 28,
        },
    }


_CONFIG_ERROR = "Error no file named config.json found in directory FLUX.1-dev/transformer."
_CONFIG_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/root/.pyenv/versions/3.11.10/lib/python3.11/site-packages/cog/server/worker.py", line 389, in _predict',
    "    result = predict(**payload)",
    "             ^^^^^^^^^^^^^^^^^^",
    '  File "/src/train.py", line 283, in train',
    "    job.run()",
    '  File "/src/ai-toolkit/jobs/ExtensionJob.py", line 22, in run',
    "    process.run()",
    '  File "/src/ai-toolkit/jobs/process/BaseSDTrainProcess.py", line 1483, in run',
    "    self.sd.load_model()",
    '  File "/src/ai-toolkit/toolkit/stable_diffusion_model.py", line 478, in load_model',
    "    transformer = FluxTransformer2DModel.from_pretrained(",
    "                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
    '  File "/root/.pyenv/versions/3.11.10/lib/python3.11/site-packages/diffusers/configuration_utils.py", line 373, in load_config',
    "    raise EnvironmentError(",
    f"OSError: {_CONFIG_ERROR}",
]


def _oom_error(rng: random.Random) -> str:
    free = rng.uniform(20.0, 90.0)
    used = 79.10 - free / 1024 - 0.01
    return (
        f"CUDA out of memory. Tried to allocate {rng.choice([144, 288, 576])}.00 MiB. GPU 0 has a total "
        f"capacity of 79.10 GiB of which {free:.2f} MiB is free. Process 1 has {used:.2f} GiB memory in "
        "use. Of the allocated memory 76.22 GiB is allocated by PyTorch, and 1.95 GiB is reserved by "
        "PyTorch but unallocated."
    )


def _oom_traceback(error: str) -> list[str]:
    return [
        "Traceback (most recent call last):",
        '  File "/root/.pyenv/versions/3.11.10/lib/python3.11/site-packages/cog/server/worker.py", line 389, in _predict',
        "    result = predict(**payload)",
        "             ^^^^^^^^^^^^^^^^^^",
        '  File "/src/train.py", line 283, in train',
        "    job.run()",
        '  File "/src/ai-toolkit/jobs/ExtensionJob.py", line 22, in run',
        "    process.run()",
        '  File "/src/ai-toolkit/jobs/process/BaseSDTrainProcess.py", line 1835, in run',
        "    loss_dict = self.hook_train_loop(batch)",
        "                ^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        '  File "/src/ai-toolkit/extensions_built_in/sd_trainer/SDTrainer.py", line 1596, in hook_train_loop',
        "    loss = self.train_single_accumulation(batch)",
        '  File "/src/ai-toolkit/extensions_built_in/sd_trainer/SDTrainer.py", line 1539, in train_single_accumulation',
        "    self.accelerator.backward(loss)",
        '  File "/root/.pyenv/versions/3.11.10/lib/python3.11/site-packages/torch/_tensor.py", line 521, in backward',
        "    torch.autograd.backward(",
        f"torch.OutOfMemoryError: {error}",
    ]


# ---- replicate/qwen-image-lora-trainer (ai-toolkit on the newest Cog runtime) ----------------------

QWEN_PYTHON = "/root/.pyenv/versions/3.10.18"  # cog.yaml: python_version "3.10"
QWEN_LIB = f"{QWEN_PYTHON}/lib/python3.10"
QWEN_LORA_MODULES = 840  # lora_special over QwenImageTransformer2DModel: 60 blocks × 14 linear layers
QWEN_MB_PER_RANK = 18.43  # the LoRA in float16: 9.83M parameters a block per unit of rank, 60 blocks


def qwen(ctx: ScriptContext, failure: str | None = None) -> Iterator[ScriptEvent]:
    """replicate/qwen-image-lora-trainer@09386ee (train.py: `logging.basicConfig(level=INFO)`, run.py
    in a subprocess that inherits the output) on ostris/ai-toolkit@1755e58 (run.py, jobs/BaseJob.py,
    jobs/process/BaseProcess.py, BaseSDTrainProcess.py, extensions_built_in/diffusion_models/
    qwen_image/qwen_image.py, toolkit/data_loader.py) with diffusers@7ea065c and transformers 4.52.4
    loading the shards. All of it as the newest Cog runtime passes it: tqdm's `\\r` refreshes, the
    config's indentation and empty lines kept; blue cells in the job's bar, as the reference notes
    (flux item 13) describe for this runtime (ToolkitProgressBar sets no colour itself)."""
    rng, tl = ctx.rng, _Timeline(ctx)
    optimizer = str(ctx.value("optimizer"))
    steps, rank, learning_rate, batch_size, images = _lora_inputs(ctx)
    resolutions = [512, 768, 1024]  # the wrapper's fixed dataset resolutions
    job = f"qwen_lora_{int(tl.now())}"
    job_dir = f"/src/output/{job}"

    def say(*lines: str) -> Emit:
        return _say(tl, True, *lines)

    def bar(n: int, elapsed: float, rate: float | None, postfix: str = "") -> str:
        return tl.meter(n, steps, elapsed, rate, desc=job, postfix=postfix, colour="blue")

    def no_samples() -> Emit:
        """BaseSDTrainProcess.sample with no prompts (sample_every 0): `Generating Images` over
        nothing, leave=False, so its line is wiped."""
        line = tl.meter(0, 0, 0.0, None, desc="Generating Images")
        return tl.out(RawText(f"\r{line}\r{' ' * len(line)}\r"))

    # 1. the wrapper: the zip, the settings, then run.py with the config it wrote
    tl.wait(rng.uniform(0.2, 0.6))
    yield say(f"INFO:__main__:Starting training: {job}")
    tl.wait(rng.uniform(0.5, 2.5))
    captioned = len(images) if rng.random() < 0.3 else 0
    yield say(
        f"INFO:__main__:Extracted {len(images)} images, {captioned} existing captions, {len(images) - captioned} created",
        f"INFO:__main__:Training: {steps} steps, rank {rank}, {optimizer}, batch {batch_size}",
        f"INFO:__main__:Starting training: {job}",
    )
    tl.wait(rng.uniform(8.0, 15.0))  # run.py imports torch, diffusers and the toolkit
    yield say("Running 1 job")
    config = _qwen_process_config(ctx, steps, rank, learning_rate, batch_size, optimizer)
    yield say(json.dumps(config, indent=4, sort_keys=True))  # the wrapper's yaml.dump sorted the keys
    tl.wait(rng.uniform(0.1, 0.4))
    yield say("", *_job_banner(job))

    # 2. the model: nothing quantized, everything to the GPU
    tl.wait(rng.uniform(0.5, 1.5))
    yield say("Loading Qwen Image model")
    tl.wait(rng.uniform(0.2, 0.5))
    yield say("Loading transformer")
    yield from _bar_run(tl, 9, rng.uniform(1.2, 2.2), desc="Loading checkpoint shards", raw=True)
    tl.wait(rng.uniform(1.0, 3.0))
    yield say("Text Encoder")
    yield from _bar_run(tl, 4, rng.uniform(0.8, 1.6), desc="Loading checkpoint shards", raw=True)
    tl.wait(rng.uniform(3.0, 6.0))
    yield say("Loading VAE")
    tl.wait(rng.uniform(0.5, 1.5))
    yield say("Making pipe")
    tl.wait(rng.uniform(0.2, 0.5))
    yield say("Preparing Model")
    tl.wait(rng.uniform(8.0, 16.0))  # 41 GB of transformer onto the GPU
    yield say("Model Loaded")
    tl.wait(rng.uniform(1.0, 3.0))
    yield say(*_lora_network(rank, QWEN_LORA_MODULES))

    # 3. one dataset per resolution, no latent caching; a baseline "sample" of no prompts
    for size in resolutions:
        yield from _dataset(tl, "/src/input_images", len(images), size, raw=True)
    tl.wait(rng.uniform(1.0, 3.0))
    yield say("Generating baseline samples before training")
    tl.wait(rng.uniform(1.0, 3.0))
    yield no_samples()

    # 4. the loop: set_postfix_str redraws the bar at its current n (step − 1), then
    # update(step − n) draws `step`; no mid-run save (save_every = steps) and no sampling
    tl.wait(rng.uniform(1.0, 3.0))
    seconds_per_step = rng.uniform(2.2, 2.6) * (0.75 + 0.25 * batch_size)
    fail_at = max(1, int(steps * rng.uniform(0.2, 0.4))) if failure == "oom" else None
    rate = SmoothedRate()
    yield tl.out(RawText("\r" + bar(0, 0.0, None)))
    elapsed, postfix = 0.0, ""
    for step in range(steps):
        dt = _step_seconds(rng, step, seconds_per_step, resolutions)
        tl.wait(dt)
        if step == fail_at:
            yield from _qwen_oom(tl, job, images[:batch_size])
            return
        elapsed += dt
        loss = _decaying_loss(rng, step, steps, start=0.5, floor=0.28, noise=0.25)
        postfix = f"lr: {learning_rate:.1e} loss: {loss:.3e}"
        shown = bar(max(0, step - 1), elapsed, rate.peek(), postfix)
        current = rate.update(1, dt) if step else None
        yield tl.out(RawText(f"\r{shown}\r{bar(step, elapsed, current, postfix)}"))

    # 5. close() draws the bar once more (overall rate) and ends its line; a last sample of no
    # prompts, the final save, then the wrapper zips the LoRA and the platform uploads it
    yield tl.out(RawText("\r" + bar(steps - 1, elapsed, (steps - 1) / elapsed, postfix) + "\n"))
    tl.wait(rng.uniform(1.0, 3.0))
    yield no_samples()
    yield say("")
    size_mb = rank * QWEN_MB_PER_RANK
    tl.wait(rng.uniform(1.0, 2.0) + size_mb / rng.uniform(600.0, 900.0))
    yield say(f"Saved checkpoint to {job_dir}/{job}.safetensors")
    tl.wait(rng.uniform(1.0, 2.0) + size_mb * 6 / rng.uniform(900.0, 1400.0))  # AdamW: two float32 moments
    yield say(f"Saved optimizer to {job_dir}/optimizer.pt")
    tl.wait(rng.uniform(2.0, 5.0))
    yield say("INFO:__main__:Training completed")
    zipped = size_mb * rng.uniform(0.92, 0.95)
    tl.wait(size_mb / rng.uniform(40.0, 70.0))  # ZIP_DEFLATED, one core
    yield say(f"INFO:__main__:Created /tmp/{job}_trained.zip ({zipped:.1f}MB)")
    yield tl.uploaded(rng.uniform(3.0, 6.0) + zipped / rng.uniform(80.0, 150.0))


def _qwen_process_config(
    ctx: ScriptContext, steps: int, rank: int, learning_rate: float, batch_size: int, optimizer: str
) -> dict[str, Any]:
    """train.py's create_training_config: the process, which BaseProcess prints."""
    seed = ctx.value("seed")
    return {
        "type": "sd_trainer",
        "training_folder": "/src/output",
        "device": "cuda:0",
        "network": {"type": "lora", "linear": rank, "linear_alpha": rank},
        "save": {"dtype": "float16", "save_every": steps, "max_step_saves_to_keep": 1, "push_to_hub": False},
        "datasets": [{
            "folder_path": "/src/input_images", "default_caption": str(ctx.value("default_caption")),
            "caption_ext": "txt", "caption_dropout_rate": 0.0, "shuffle_tokens": False,
            "cache_latents_to_disk": False, "resolution": [512, 768, 1024], "pin_memory": True, "num_workers": 4,
        }],
        "train": {
            "batch_size": batch_size, "steps": steps, "gradient_accumulation_steps": 2, "train_unet": True,
            "train_text_encoder": False, "gradient_checkpointing": False, "noise_scheduler": "flowmatch",
            "optimizer": optimizer, "lr": learning_rate, "dtype": "bf16", "max_grad_norm": 1.0,
            "seed": int(seed) if seed else 42, "ema_config": {"use_ema": False, "ema_decay": 0.99},
        },
        "model": {"name_or_path": "Qwen/Qwen-Image", "arch": "qwen_image", "quantize": False, "quantize_te": False,
                  "low_vram": False},
        "sample": {"sample_every": 0},
    }


def _qwen_oom(tl: _Timeline, job: str, batch: list[str]) -> Iterator[ScriptEvent]:
    """Out of memory in a step (nothing quantized, no gradient checkpointing): ai-toolkit prints the
    traceback onto the bar's line, the batch, its job summary, and re-raises; run.py exits 1 and the
    wrapper's `subprocess.run(check=True)` fails the training."""
    rng = tl.ctx.rng
    error = _oom_error(rng)
    site = f"{QWEN_LIB}/site-packages"
    step = [
        '  File "/src/ai-toolkit/jobs/process/BaseSDTrainProcess.py", line 2078, in run',
        "    loss_dict = self.hook_train_loop(batch_list)",
        '  File "/src/ai-toolkit/extensions_built_in/sd_trainer/SDTrainer.py", line 1815, in hook_train_loop',
        "    loss = self.train_single_accumulation(batch)",
        '  File "/src/ai-toolkit/extensions_built_in/sd_trainer/SDTrainer.py", line 1802, in train_single_accumulation',
        "    self.accelerator.backward(loss)",
        f'  File "{site}/accelerate/accelerator.py", line 2734, in backward',
        "    loss.backward(**kwargs)",
        f'  File "{site}/torch/_tensor.py", line 648, in backward',
        "    torch.autograd.backward(",
        f'  File "{site}/torch/autograd/__init__.py", line 353, in backward',
        "    _engine_run_backward(",
        f'  File "{site}/torch/autograd/graph.py", line 824, in _engine_run_backward',
        "    return Variable._execution_engine.run_backward(  # Calls into the C++ engine to run the backward pass",
        f"torch.OutOfMemoryError: {error}",
    ]
    yield _say(tl, True, "Traceback (most recent call last):", *step, "Batch Items:", *(f" - /src/input_images/{name}" for name in batch))
    yield _say(
        tl, True, f"Error running job: {error}", "", "=" * 40, "Result:", " - 0 completed jobs", " - 1 failure", "=" * 40,
        "Traceback (most recent call last):",
        '  File "/src/ai-toolkit/run.py", line 120, in <module>', "    main()",
        '  File "/src/ai-toolkit/run.py", line 108, in main', "    raise e",
        '  File "/src/ai-toolkit/run.py", line 96, in main', "    job.run()",
        '  File "/src/ai-toolkit/jobs/ExtensionJob.py", line 22, in run', "    process.run()",
        '  File "/src/ai-toolkit/jobs/process/BaseSDTrainProcess.py", line 2086, in run', "    raise e",
        *step,
    )
    tl.wait(rng.uniform(1.0, 3.0))
    command = [f"{QWEN_PYTHON}/bin/python", "run.py", f"/src/output/{job}/config.yaml"]
    failed = f"Command '{command!r}' returned non-zero exit status 1."
    yield tl.fail([RawText("".join(f"{line}\n" for line in [
        "Traceback (most recent call last):",
        f'  File "{site}/cog/server/worker.py", line 646, in _predict',
        "    result = predict(**payload)",
        '  File "/src/train.py", line 214, in train',
        "    run_training(config, job_name)",
        '  File "/src/train.py", line 134, in run_training',
        '    subprocess.run([sys.executable, "run.py", str(config_path.absolute())],',
        f'  File "{QWEN_LIB}/subprocess.py", line 526, in run',
        "    raise CalledProcessError(retcode, process.args,",
        f"subprocess.CalledProcessError: {failed}",
    ]))], failed)


# ---- DreamBooth LoRA on diffusers (lucataco/cog-diffusers-dreambooth-lora) -------------------------

DREAMBOOTH_BASE = "/tmp/train"  # the wrapper's output_base: what it tars
DREAMBOOTH_OUTPUT = f"{DREAMBOOTH_BASE}/output/flux_train_replicate"
FLUX_PIPELINE = (  # FLUX.1-dev's model_index.json: what FluxPipeline.from_pretrained loads, in order
    ("scheduler", "FlowMatchEulerDiscreteScheduler"), ("text_encoder", "CLIPTextModel"),
    ("text_encoder_2", "T5EncoderModel"), ("tokenizer", "CLIPTokenizer"), ("tokenizer_2", "T5TokenizerFast"),
    ("transformer", "FluxTransformer2DModel"), ("vae", "AutoencoderKL"),
)
# what accelerate's save_state writes into a checkpoint (sampler.bin only for a seedable sampler)
DREAMBOOTH_CHECKPOINT_FILES = ("pytorch_lora_weights.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl")


def diffusers(ctx: ScriptContext) -> Iterator[ScriptEvent]:
    """huggingface/diffusers@5700e52 examples/dreambooth/train_dreambooth_lora_flux.py with
    accelerate 1.0.0 (Accelerator.save_state, checkpointing.py), run by
    lucataco/cog-diffusers-dreambooth-lora@a0614e1 (predict.py: `accelerate launch` with
    `--optimizer=prodigy`, no validation prompt, checkpoints only when asked, then `tar -cvf`), on
    the older Cog runtime (a line per print). The script logs through accelerate's logger
    (basicConfig's `%m/%d/%Y %H:%M:%S - LEVEL - name - message`); diffusers' loggers have a handler
    of their own and print the bare message. The simulator runs it with the flux trainer's inputs
    (steps, lora_rank, batch_size, learning_rate, the first resolution, trigger_word) and the
    wrapper's `checkpointing_steps`."""
    rng, tl = ctx.rng, _Timeline(ctx)
    steps, rank, learning_rate, batch_size, images = _lora_inputs(ctx)
    resolution = _resolutions(str(ctx.value("resolution")))[0]
    every = int(ctx.value("checkpointing_steps") or steps + 1)  # the wrapper's default: none
    seed = int(ctx.value("seed") or rng.randint(0, 2**32 - 1))
    out = DREAMBOOTH_OUTPUT

    def log(name: str, *messages: str, level: str = "INFO") -> tuple[str, ...]:
        stamp = datetime.fromtimestamp(int(tl.now()), timezone.utc).strftime("%m/%d/%Y %H:%M:%S")
        return tuple(f"{stamp} - {level} - {name} - {message}" for message in messages)

    # 1. the wrapper
    tl.wait(rng.uniform(0.2, 0.6))
    yield tl.out(f"Using seed: {seed}")
    tl.wait(rng.uniform(0.3, 1.5))
    params = [
        "accelerate", "launch", "--dynamo_backend", "no", "train_dreambooth_lora_flux.py",
        "--pretrained_model_name_or_path", "FLUX.1-dev", "--instance_data_dir", "input_images", "--rank", str(rank),
        "--output_dir", out, "--mixed_precision", "bf16", "--instance_prompt", f"a photo of {ctx.value('trigger_word')}",
        "--resolution", str(resolution), "--train_batch_size", str(batch_size), "--gradient_accumulation_steps", "1",
        "--optimizer=prodigy", "--learning_rate", str(learning_rate), "--lr_scheduler", "constant",
        "--lr_warmup_steps", "0", "--max_train_steps", str(steps), "--checkpointing_steps", str(every),
        "--seed", str(seed), "--logging_dir", "/tmp/logs",
    ]
    yield tl.out(f"Extracted {len(images)} files from zip to input_images", f"Using params: {params!r}")

    # 2. the script: accelerate's state (one message over several lines), the models, the optimizer
    tl.wait(rng.uniform(8.0, 15.0))
    yield tl.out(*log("__main__", "Distributed environment: DistributedType.NO"), "Num processes: 1",
                 "Process index: 0", "Local process index: 0", "Device: cuda", "Mixed precision type: bf16")
    tl.wait(rng.uniform(2.0, 4.0))  # tokenizers, scheduler, CLIP
    yield from _bar_run(tl, 2, rng.uniform(2.5, 4.0), desc="Loading checkpoint shards", close=True)  # T5
    tl.wait(rng.uniform(15.0, 25.0))  # the VAE, then the 23 GB transformer; to the GPU; the LoRA adapter
    if learning_rate <= 0.1:
        yield tl.out(*log("__main__", "Learning rate is too low. When using prodigy, it's generally better to set "
                          "learning rate around 1.0", level="WARNING"))
    tl.wait(rng.uniform(2.0, 5.0))  # the dataset, the prompt's embeddings

    # 3. training: update(1), then set_postfix(loss=…, lr=…); accelerator.save_state every
    # `checkpointing_steps`, with the LoRA through the save hook
    per_epoch = math.ceil(len(images) / batch_size)
    yield tl.out(*log(
        "__main__", "***** Running training *****", f"  Num examples = {len(images)}",
        f"  Num batches each epoch = {per_epoch}", f"  Num Epochs = {math.ceil(steps / per_epoch)}",
        f"  Instantaneous batch size per device = {batch_size}",
        f"  Total train batch size (w. parallel, distributed & accumulation) = {batch_size}",
        "  Gradient Accumulation steps = 1", f"  Total optimization steps = {steps}",
    ))
    seconds_per_step = rng.uniform(0.85, 1.0) * (resolution / 512) ** 1.5 * (0.5 + 0.5 * batch_size)
    rate = SmoothedRate()
    yield tl.out(tl.meter(0, steps, 0.0, None, desc="Steps"))
    elapsed, since, postfix = 0.0, 0.0, ""
    for step in range(1, steps + 1):
        dt = max(0.05, seconds_per_step * rng.gauss(1.0, 0.06))
        if step == 1:
            dt += rng.uniform(1.5, 3.0)  # the first step: kernels, allocator
        elif rng.random() < 0.02:
            dt += rng.uniform(0.2, 0.8)
        tl.wait(dt)
        elapsed, since = elapsed + dt, since + dt
        yield tl.out(tl.meter(step, steps, elapsed, rate.update(1, since), desc="Steps", postfix=postfix))
        since = 0.0
        if step % every == 0:
            saved = tl.elapsed
            yield from _dreambooth_checkpoint(tl, f"{out}/checkpoint-{step}", log)
            elapsed, since = elapsed + tl.elapsed - saved, tl.elapsed - saved
        loss = _decaying_loss(rng, step, steps, start=0.45, floor=0.32, noise=0.3)
        postfix = _postfix(loss=float(_float32(loss)), lr=learning_rate)
        yield tl.out(tl.meter(step, steps, elapsed, rate.peek(), desc="Steps", postfix=postfix))

    # 4. the LoRA, the final pipeline with it loaded (no validation prompt: no inference); when
    # main() returns the bar is collected and tqdm's close() draws it once more
    trained = tl.elapsed
    tl.wait(rng.uniform(1.0, 2.5))
    yield tl.out(f"Model weights saved in {out}/pytorch_lora_weights.safetensors")
    tl.wait(rng.uniform(0.5, 1.5))
    yield from _pipeline_load(tl)
    tl.wait(rng.uniform(1.0, 2.5))
    yield tl.out("Loading transformer.")
    tl.wait(rng.uniform(1.0, 3.0))
    closed = elapsed + tl.elapsed - trained
    yield tl.out(tl.meter(steps, steps, closed, steps / closed, desc="Steps", postfix=postfix))

    # 5. the wrapper renames the LoRA and tars the output (GNU tar -v lists what it adds)
    tl.wait(rng.uniform(1.0, 3.0))
    listing = ["./", "./output/", "./output/flux_train_replicate/"]
    for step in range(every, steps + 1, every):
        folder = f"./output/flux_train_replicate/checkpoint-{step}/"
        listing += [folder, *(folder + name for name in DREAMBOOTH_CHECKPOINT_FILES)]
    yield tl.out(*listing, "./output/flux_train_replicate/lora.safetensors")
    yield tl.uploaded(rng.uniform(5.0, 12.0))


def _dreambooth_checkpoint(tl: _Timeline, path: str, log: Callable[..., tuple[str, ...]]) -> Iterator[Emit]:
    """accelerate 1.0.0 Accelerator.save_state: the LoRA through the script's save hook (diffusers'
    logger: the bare message), then checkpointing.py's states, then the script's own line."""
    rng = tl.ctx.rng
    yield tl.out(*log("accelerate.accelerator", f"Saving current state to {path}"))
    tl.wait(rng.uniform(0.3, 1.0))
    yield tl.out(f"Model weights saved in {path}/pytorch_lora_weights.safetensors")
    tl.wait(rng.uniform(0.8, 2.0))  # Prodigy's state: several float32 copies of the LoRA
    yield tl.out(*log("accelerate.checkpointing", f"Optimizer state saved in {path}/optimizer.bin"))
    tl.wait(rng.uniform(0.01, 0.05))
    yield tl.out(*log(
        "accelerate.checkpointing", f"Scheduler state saved in {path}/scheduler.bin",
        f"Sampler state for dataloader 0 saved in {path}/sampler.bin", f"Random states saved in {path}/random_states_0.pkl",
    ), *log("__main__", f"Saved state to {path}"))


def _pipeline_load(tl: _Timeline) -> Iterator[Emit]:
    """diffusers DiffusionPipeline.from_pretrained: `Loading pipeline components...` over the
    components (a refresh once ≥ 0.1 s passed), a `Loaded …` line for each (info level), T5's
    shards in a bar nested under it; then the bar closes."""
    rng = tl.ctx.rng
    desc, total = "Loading pipeline components...", len(FLUX_PIPELINE)
    seconds = {"text_encoder": (0.4, 0.8), "tokenizer_2": (0.1, 0.3), "transformer": (6.0, 12.0), "vae": (0.2, 0.5)}
    yield tl.out(tl.meter(0, total, 0.0, None, desc=desc))
    start, printed, rate = tl.elapsed, (0, 0.0), SmoothedRate()
    for n, (name, kind) in enumerate(FLUX_PIPELINE, 1):
        if name == "text_encoder_2":
            yield from _bar_run(tl, 2, rng.uniform(1.5, 3.0), desc="Loading checkpoint shards", close=True, nested=True)
        tl.wait(rng.uniform(*seconds.get(name, (0.01, 0.05))))
        yield tl.out(f"Loaded {name} as {kind} from `{name}` subfolder of FLUX.1-dev.")
        spent = tl.elapsed - start
        if spent - printed[1] >= 0.1:
            current = rate.update(n - printed[0], spent - printed[1])
            printed = (n, spent)
            yield tl.out(tl.meter(n, total, spent, current, desc=desc))
    spent = tl.elapsed - start
    yield tl.out(tl.meter(total, total, spent, total / spent, desc=desc))


def _postfix(**values: float) -> str:
    """tqdm's set_postfix(**values): keys in order, numbers by tqdm's format_num (`.3g` if shorter)."""
    return ", ".join(f"{key}={tqdm.format_num(values[key])}" for key in sorted(values))


# ---- stability-ai/sdxl (cog-sdxl) -----------------------------------------------------------------

SDXL_URL = "https://weights.replicate.delivery/default/sdxl/sdxl-vae-upcast-fix.tar"
SDXL_PREPROCESSING_WEIGHTS = {
    "captions": [("https://weights.replicate.delivery/default/blip-large/processor.tar", "./blip-processor-cache"),
                 ("https://weights.replicate.delivery/default/blip-large/model.tar", "./blip-cache")],
    "masks": [("https://weights.replicate.delivery/default/clipseg/processor.tar", "./clipseg-processor-cache"),
              ("https://weights.replicate.delivery/default/clipseg/model.tar", "./clipseg-cache")],
    "upscaling": [("https://weights.replicate.delivery/default/swin2sr/model.tar", "./swin2sr-cache")],
}


def _sdxl_download(tl: _Timeline, url: str, dest: str, seconds: float) -> Iterator[Emit]:
    """cog-sdxl predict.py download_weights: print("downloading url: ", url) … pget … took."""
    yield tl.out(f"downloading url:  {url}", f"downloading to:  {dest}")
    tl.wait(seconds)
    yield tl.out(f"downloading took:  {seconds!r}")


def sdxl(ctx: ScriptContext, failure: str | None = None) -> Iterator[ScriptEvent]:
    """replicate/cog-sdxl@c79cb3c: train.py, preprocess.py, trainer_pti.py, predict.py."""
    rng, tl = ctx.rng, _Timeline(ctx)
    steps = int(ctx.value("max_train_steps"))
    batch = int(ctx.value("train_batch_size"))
    images = ctx.images if ctx.images else _default_images(rng)
    count = len(images)

    tl.wait(rng.uniform(0.5, 2.0))
    yield tl.out("Image files:  " + repr([f"tmp/{name}" for name in sorted(images)]))
    if failure == "preprocess":
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.fail(_SDXL_TRACEBACK, _SDXL_ERROR)
        return
    # BLIP captions: its weights, then a bar over the images
    yield tl.out(f"Generating {count} captions...")
    for url, dest in SDXL_PREPROCESSING_WEIGHTS["captions"]:
        yield from _sdxl_download(tl, url, dest, rng.uniform(0.5, 4.0))
    yield tl.out("Input captioning text: a photo of")
    yield from _bar_run(tl, count, rng.uniform(0.3, 0.6))
    token = str(ctx.value("token_string") or "TOK")
    yield tl.out(token, "Generated captions " + repr([f"a photo of {token}"] * min(count, 2) + ["..."]))
    # CLIPSeg masks: a bar over a zip, so no total
    yield tl.out(f"Generating {count} masks...")
    for url, dest in SDXL_PREPROCESSING_WEIGHTS["masks"]:
        yield from _sdxl_download(tl, url, dest, rng.uniform(0.3, 2.0))
    yield tl.out(tl.meter(0, None, 0.0, None))
    spent, rate = 0.0, SmoothedRate()
    for n in range(1, count + 1):
        dt = rng.uniform(0.1, 0.3)
        spent += dt
        tl.wait(dt)
        current = rate.update(1, dt)
        if n == count or n % 4 == 0:
            yield tl.out(tl.meter(n, None, spent, current))
    # SwinIR upscaling
    yield tl.out(f"Upscaling {count} images...")
    for url, dest in SDXL_PREPROCESSING_WEIGHTS["upscaling"]:
        yield from _sdxl_download(tl, url, dest, rng.uniform(0.5, 3.0))
    yield from _bar_run(tl, count, rng.uniform(0.8, 1.6))
    # the SDXL weights, then the trainer
    yield from _sdxl_download(tl, SDXL_URL, "./sdxl-cache", rng.uniform(12.0, 30.0))
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out("Using seed " + str(ctx.value("seed") or rng.randint(0, 2**32 - 1)))
    tl.wait(rng.uniform(15.0, 25.0))
    yield tl.out("# PTI : Loaded models")
    tl.wait(rng.uniform(0.5, 1.5))
    yield tl.out(
        "text_model.embeddings.token_embedding.weight",
        "Training: text_model.embeddings.token_embedding.weight",
        "# PTI : Loading dataset, do_cache True",
    )
    tl.wait(rng.uniform(3.0, 8.0))
    batches = max(1, math.ceil(count / batch))
    epochs = math.ceil(steps / batches)
    yield tl.out(
        "# PTI : Loaded dataset",
        "# PTI :  Running training ",
        f"# PTI :  Num examples = {count}",
        f"# PTI :  Num batches each epoch = {batches}",
        f"# PTI :  Num Epochs = {epochs}",
        f"# PTI :  Instantaneous batch size per device = {batch}",
        f"  Total train batch size (w. parallel, distributed & accumulation) = {batch}",
        "# PTI :  Gradient Accumulation steps = 1",
        f"# PTI :  Total optimization steps = {steps}",
    )
    # ONE bar over max_train_steps; the loop runs whole epochs, so it may end past its total.
    # Each step: update(1) (refresh with the old description), then set_description.
    seconds_per_step = rng.uniform(0.34, 0.42) * batch / 4
    rate = SmoothedRate()
    yield tl.out(tl.meter(0, steps, 0.0, None))
    elapsed, desc, global_step = 0.0, "", 0
    for epoch in range(epochs):
        if epoch == epochs // 2:
            yield tl.out("# PTI :  Pivot halfway")
        for _ in range(batches):
            dt = max(0.02, seconds_per_step * rng.gauss(1.0, 0.06))
            if rng.random() < 0.01:
                dt += rng.uniform(0.2, 0.8)
            elapsed += dt
            tl.wait(dt)
            current = rate.update(1, dt)
            first = tl.meter(global_step + 1, steps, elapsed, current, desc=desc)
            desc = f"# PTI :step: {global_step}, epoch: {epoch}"
            yield tl.out(first, tl.meter(global_step + 1, steps, elapsed, current, desc=desc))
            global_step += 1
    tl.wait(rng.uniform(0.5, 1.5))
    yield tl.out("Saving final model for return")
    tl.wait(rng.uniform(3.0, 6.0))
    yield tl.out("training_out/lora.safetensors", "training_out/embeddings.pti", "training_out/special_params.json")
    yield tl.uploaded(rng.uniform(5.0, 12.0))


_SDXL_ERROR = "No image files found in the input archive. Upload a .zip or .tar of .jpg, .jpeg or .png files."
_SDXL_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/root/.pyenv/versions/3.9.18/lib/python3.9/site-packages/cog/server/worker.py", line 217, in _predict',
    "    result = predict(**payload)",
    '  File "/src/train.py", line 150, in train',
    "    input_dir, n_imgs, trigger_text, segmentation_prompts, captions = preprocess(",
    '  File "/src/preprocess.py", line 90, in preprocess',
    "    raise ValueError(",
    f"ValueError: {_SDXL_ERROR}",
]


# ---- meta/llama-2-7b (cog-llama-template) --------------------------------------------------------

LLAMA_FILES = [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
]


def llama(ctx: ScriptContext, failure: str | None = None) -> Iterator[ScriptEvent]:
    """replicate/cog-llama-template@845e24f: train.py, llama_recipes/llama_finetuning.py,
    llama_recipes/utils/train_utils.py. LoRA runs on 4 GPUs with torch.distributed.run (every rank
    draws its own bar), QLoRA in one process."""
    rng, tl = ctx.rng, _Timeline(ctx)
    epochs = int(ctx.value("num_train_epochs"))
    batch = int(ctx.value("train_batch_size"))
    max_steps = int(ctx.value("max_steps"))
    qlora = ctx.value("peft_method") == "qlora"
    validation = bool(ctx.value("run_validation"))
    gpus = 4
    processes = 1 if qlora else gpus
    rows = ctx.text_rows if ctx.text_rows else 1200
    weights_dir = "models/llama-2-7b/model_artifacts/training_weights"

    tl.wait(rng.uniform(0.2, 0.8))
    yield tl.out(f"Downloading weights to {weights_dir}...", "Downloading weights...")
    for name in LLAMA_FILES:
        tl.wait(rng.uniform(4.0, 9.0) if name.endswith(".safetensors") else rng.uniform(0.05, 0.3))
        yield tl.out(f"Downloading  https://weights.replicate.delivery/default/llama-2-7b/{name}")
    tl.wait(rng.uniform(1.0, 2.0))
    args = (["python"] if qlora else ["python3", "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={gpus}"])
    args += ["llama_recipes/llama_finetuning.py"] + ([] if qlora else ["--enable_fsdp"]) + [
        "--use_peft", f"--model_name={weights_dir}", "--pure_bf16", "--output_dir=training_output",
        "--pack_sequences=False", "--wrap_packed_sequences=False", "--chunk_size=2048",
        "--data_path=/tmp/tmpk1x2/train_data.jsonl", f"--num_epochs={epochs}", f"--batch_size_training={batch}",
        f"--gradient_accumulation_steps={ctx.value('gradient_accumulation_steps')}", f"--lr={ctx.value('learning_rate')}",
        f"--lora_rank={ctx.value('lora_rank')}", f"--lora_alpha={ctx.value('lora_alpha')}",
        f"--lora_dropout={ctx.value('lora_dropout')}", f"--peft_method={ctx.value('peft_method')}",
        f"--run_validation={validation}", "--num_validation_samples=50", "--validation_data_path=None",
        "--val_batch_size=1", "--validation_prompt=None", f"--seed={ctx.value('seed')}",
    ]
    yield tl.out("Local Output Dir: training_output", f"Number of GPUs: {gpus}", "Train.py Arguments: ", repr(args))
    if failure == "data":
        tl.wait(rng.uniform(2.0, 5.0))
        yield tl.out("--> Running with torch dist debug set to detail", *_LLAMA_DATA_TRACEBACK)
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.fail([], _LLAMA_ERROR)
        return
    tl.wait(rng.uniform(3.0, 6.0))
    yield tl.out("--> Running with torch dist debug set to detail")
    tl.wait(rng.uniform(5.0, 10.0))
    for _ in range(processes):  # every rank loads the shards
        yield from _bar_run(tl, 2, rng.uniform(3.0, 5.0) / processes, desc="Loading checkpoint shards")
    tl.wait(rng.uniform(2.0, 5.0))
    yield tl.out(
        "trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.06220594176090199",
        f"--> Model {weights_dir}",
        f"--> {weights_dir} has 262.41024 Million params",
    )
    tl.wait(rng.uniform(2.0, 6.0))
    # num_validation_samples (50) from the tail of the training data
    validation_rows = min(50, max(1, rows // 10)) if validation else 0
    train_rows = rows - validation_rows if validation else rows
    yield tl.out(f"--> Training Set Length = {train_rows}")
    if validation:
        yield tl.out(f"--> Validation Set Length = {validation_rows}")

    # DistributedSampler: ceil(rows / processes) each; DataLoader(drop_last=True): whole batches
    per_epoch = max(1, -(-train_rows // processes) // batch)
    eval_batches = max(1, -(-validation_rows // processes)) if validation else 0
    budget = max_steps if max_steps > 0 else per_epoch * epochs
    seconds_per_step = rng.uniform(2.0, 2.6) * batch / 4
    best = float("inf")
    late: str | None = None  # one rank's closing refresh, printed after the next epoch began
    done = 0
    for epoch in range(epochs):
        desc = f"Training Epoch{epoch}"
        lines = [tl.meter(0, per_epoch, 0.0, None, desc=desc, colour="blue") for _ in range(processes)]
        if late:
            lines.append(late)
            late = None
        yield tl.out(*lines)
        rates = [SmoothedRate() for _ in range(processes)]
        elapsed, total_loss = 0.0, 0.0
        steps_run = 0
        for step in range(per_epoch):
            if done >= budget:
                break
            dt = max(0.1, seconds_per_step * rng.gauss(1.0, 0.06))
            if rng.random() < 0.03:
                dt += rng.uniform(0.5, 2.0)  # a slow batch (long sequences)
            elapsed += dt
            tl.wait(dt)
            loss = _decaying_loss(rng, done, budget, start=1.9, floor=1.05, noise=0.08)
            total_loss += loss
            done += 1
            steps_run += 1
            out = [f"\n step {step} is completed and loss is tensor({loss:.4f}, device='cuda:0')"]
            order = list(range(processes))
            rng.shuffle(order)
            last_of_epoch = step == per_epoch - 1 or done >= budget
            for rank in order:
                line = tl.meter(step + 1, per_epoch, elapsed, rates[rank].update(1, dt), desc=desc, colour="blue")
                if last_of_epoch and rank == order[-1] and not validation and epoch + 1 < epochs and processes > 1:
                    late = line  # interleaving: this rank's closing line comes after the next epoch starts
                else:
                    out.append(line)
            yield tl.out(*out)
        epoch_loss = total_loss / max(1, steps_run)
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.out(
            "Max CUDA memory allocated was 14 GB",
            "Max CUDA memory reserved was 16 GB",
            "Peak active CUDA memory was 14 GB",
            "Cuda Malloc retires : 0",
            "CPU Total Peak Memory consumed during the train (max): 3 GB",
        )
        if validation:
            spent = 0.0
            for _ in range(processes):
                yield tl.out(tl.meter(0, eval_batches, 0.0, None, desc="evaluating Epoch", colour="green"))
            for n in range(1, eval_batches + 1):
                dt = rng.uniform(0.25, 0.4)
                spent += dt
                tl.wait(dt)
                if n == eval_batches or n % 4 == 0:
                    yield tl.out(*(tl.meter(n, eval_batches, spent, n / spent, desc="evaluating Epoch", colour="green")
                                   for _ in range(processes)))
            eval_loss = epoch_loss * rng.uniform(0.95, 1.1)
            yield tl.out(f" eval_ppl=tensor({math.exp(eval_loss):.4f}, device='cuda:0') "
                         f"eval_epoch_loss=tensor({eval_loss:.4f}, device='cuda:0')")
            if eval_loss < best:
                yield tl.out("we are about to save the PEFT modules")
                tl.wait(rng.uniform(2.0, 5.0))
                yield tl.out("PEFT modules are saved in training_output directory")
                best = eval_loss
                yield tl.out(f"best eval loss on epoch {epoch} is tensor({best:.4f}, device='cuda:0')")
        yield tl.out(f"Epoch {epoch + 1}: train_perplexity={math.exp(epoch_loss):.4f}, train_epoch_loss={epoch_loss:.4f}")
        if done >= budget:
            break
    if not validation:
        tl.wait(rng.uniform(1.0, 3.0))
        yield tl.out("we are about to save the PEFT modules")
        tl.wait(rng.uniform(2.0, 5.0))
        yield tl.out("PEFT modules are saved in training_output directory")
    tl.wait(rng.uniform(1.0, 2.0))
    yield tl.out("training_output/adapter_config.json", "training_output/adapter_model.bin", "training_output/README.md")
    yield tl.uploaded(rng.uniform(5.0, 10.0))


_LLAMA_ERROR = "Training failed! Process returned error code 1. Check the logs for details."
_LLAMA_DATA_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/src/llama_recipes/llama_finetuning.py", line 271, in <module>',
    "    fire.Fire(main)",
    '  File "/src/llama_recipes/llama_finetuning.py", line 176, in main',
    "    dataset_train = get_preprocessed_dataset(",
    '  File "/src/llama_recipes/ft_datasets/completion_dataset.py", line 41, in load_data',
    "    data = json.loads(line)",
    '  File "/usr/lib/python3.10/json/decoder.py", line 355, in raw_decode',
    "    raise JSONDecodeError(\"Expecting value\", s, err.value) from None",
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
]


# ---- registry -----------------------------------------------------------------------------------

ScriptFactory = Callable[[ScriptContext], Iterator[ScriptEvent]]


@dataclass(frozen=True)
class Script:
    name: str
    trainer: str  # owner/name of the trainer it imitates
    factory: ScriptFactory
    outcome: str  # "succeeded" or "failed"
    summary: str


SCRIPTS: dict[str, Script] = {
    script.name: script
    for script in (
        Script("flux", "ostris/flux-dev-lora-trainer", flux, "succeeded", "full flux LoRA run"),
        Script("flux-raw", "ostris/flux-dev-lora-trainer", lambda c: flux(c, raw=True), "succeeded",
               "full flux LoRA run on the newest Cog runtime (raw \\r refreshes, indented config)"),
        Script("flux-fail", "ostris/flux-dev-lora-trainer", lambda c: flux(c, "oom"), "failed",
               "CUDA out of memory a third of the way through training"),
        Script("flux-fail-load", "ostris/flux-dev-lora-trainer", lambda c: flux(c, "load"), "failed",
               "missing config.json while loading the transformer"),
        Script("diffusers", "ostris/flux-dev-lora-trainer", diffusers, "succeeded",
               "a DreamBooth LoRA run on diffusers (train_dreambooth_lora_flux.py) for the flux trainer's inputs"),
        Script("qwen", "replicate/qwen-image-lora-trainer", qwen, "succeeded",
               "Qwen-Image LoRA run on ai-toolkit, on the newest Cog runtime (raw \\r refreshes, colour)"),
        Script("qwen-fail", "replicate/qwen-image-lora-trainer", lambda c: qwen(c, "oom"), "failed",
               "CUDA out of memory a fifth to two fifths of the way through training"),
        Script("sdxl", "stability-ai/sdxl", sdxl, "succeeded", "full SDXL LoRA/PTI run"),
        Script("sdxl-fail", "stability-ai/sdxl", lambda c: sdxl(c, "preprocess"), "failed",
               "no images in the input archive"),
        Script("llama", "meta/llama-2-7b", llama, "succeeded", "LoRA fine-tune of Llama 2 7B"),
        Script("llama-fail", "meta/llama-2-7b", lambda c: llama(c, "data"), "failed",
               "training data that is not JSONL"),
    )
}


def default_script(trainer: str) -> str:
    return TRAINERS[trainer].script


def run_to_end(events: Iterator[ScriptEvent]) -> tuple[list[str], float, ScriptEvent]:
    """Fast-forward: all lines, total simulated seconds, and the final Succeed/Fail event."""
    lines: list[str] = []
    total = 0.0
    for event in events:
        total += event.delay
        if isinstance(event, Emit):
            lines.extend(event.lines)
        else:
            if isinstance(event, Fail):
                lines.extend(event.lines)
            return lines, total, event
    raise RuntimeError("a simulator script ended without Succeed or Fail")
