"""Trainer log scripts: what each real trainer prints, stage by stage, with realistic timing.

A script is a generator of events: `Emit` (wait `delay` simulated seconds, then print lines),
then one `Succeed` or `Fail`. Scripts only describe; the simulator decides how fast simulated
time passes (its `speed`), or fast-forwards a whole script at once for past trainings. Every
random choice comes from the training's own `random.Random`, so a seed replays the same log.

Lines are written as the trainer prints them; the simulator then does what Cog does to logs
(strip each line, drop empty ones), which is why tracebacks and JSON dumps end up flush left.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .formats import pget_time
from .progress_bars import SmoothedRate, meter
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

    def fail(self, lines: list[str], error: str) -> Fail:
        event = Fail(self._pending, tuple(lines), error)
        self._pending = 0.0
        return event

    def now(self) -> float:
        return self.ctx.start_time + self.elapsed * self.ctx.time_scale

    def meter(self, n: int, total: int, elapsed: float, rate: float | None, **options: str) -> str:
        """A tqdm refresh as an observer sees it: at speed 10 the trainer looks like a 10x faster
        GPU, so its own elapsed<remaining and rate agree with the wall clock (and the ETA)."""
        scale = self.ctx.time_scale
        return meter(n, total, elapsed * scale, rate / scale if rate else rate, **options)


def _bar_run(
    tl: _Timeline,
    total: int,
    seconds_per_item: float,
    *,
    desc: str = "",
    refresh: float = 0.1,
    jitter: float = 0.15,
) -> Iterator[Emit]:
    """A short tqdm bar (preprocessing, shard loading): first line, refreshes ≥ `refresh` s apart, last."""
    rng = tl.ctx.rng
    rate = SmoothedRate()
    yield tl.out(tl.meter(0, total, 0.0, None, desc=desc))
    started, last_print, current = 0.0, 0.0, None
    for n in range(1, total + 1):
        dt = max(1e-4, seconds_per_item * rng.uniform(1 - jitter, 1 + jitter))
        started += dt
        tl.wait(dt)
        current = rate.update(1, dt)
        if n == total or started - last_print >= refresh:
            last_print = started
            yield tl.out(tl.meter(n, total, started, current, desc=desc))


def _float32(value: float) -> str:
    """How PyTorch prints a float32 loss through `float()`: the full double repr of a float32."""
    return repr(struct.unpack("f", struct.pack("f", value))[0])


def _decaying_loss(rng: random.Random, step: int, total: int, start: float, floor: float, noise: float) -> float:
    trend = floor + (start - floor) * math.exp(-3.0 * step / max(1, total))
    return max(1e-4, trend * rng.lognormvariate(0.0, noise))


def _flush_left_json(data: Any) -> list[str]:
    return json.dumps(data, indent=2).splitlines()


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


def flux(ctx: ScriptContext, failure: str | None = None) -> Iterator[ScriptEvent]:
    rng, tl = ctx.rng, _Timeline(ctx)
    steps = int(ctx.value("steps"))
    rank = int(ctx.value("lora_rank"))
    learning_rate = float(ctx.value("learning_rate"))
    batch_size = int(ctx.value("batch_size"))
    trigger = str(ctx.value("trigger_word"))
    resolutions = _resolutions(str(ctx.value("resolution")))
    images = ctx.images if ctx.images else _default_images(rng)
    save_every = 500 if steps >= 1000 else max(1, steps // 2)

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
    yield tl.out("Starting train job", *_flush_left_json(config), "Using EMA")
    tl.wait(rng.uniform(0.1, 0.4))
    banner = "#" * 45
    yield tl.out(banner, f"# Running job: {FLUX_JOB}", banner, "", "", "Running  1 process")

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
    yield tl.out(
        f"create LoRA network. base dim (rank): {rank}, alpha: {rank}",
        "neuron dropout: p=None, rank dropout: p=None, module dropout: p=None",
        "create LoRA for Text Encoder: 0 modules.",
        "create LoRA for U-Net: 494 modules.",
        "enable LoRA for U-Net",
    )

    # 7. datasets, once per resolution
    for size in resolutions:
        tl.wait(rng.uniform(0.2, 0.6))
        yield tl.out("Dataset: input_images", "  -  Preprocessing image dimensions")
        yield from _bar_run(tl, len(images), rng.uniform(0.0006, 0.0012))
        yield tl.out(
            f"  -  Found {len(images)} images",
            "Bucket sizes for input_images:",
            f"{size}x{size}: {len(images)} files",
            "1 buckets made",
            "Caching latents for input_images",
            " - Keeping latents in memory",
        )
        yield from _bar_run(tl, len(images), rng.uniform(0.25, 0.4) * (size / 1024) ** 2 + 0.05, desc="Caching latents")

    # 8–9. the training loop, one bar line per step
    tl.wait(rng.uniform(1.0, 3.0))
    seconds_per_step = rng.uniform(0.92, 1.08) * (0.75 + 0.25 * batch_size) * (max(resolutions) / 1024) ** 1.5
    fail_at = max(1, int(steps * rng.uniform(0.25, 0.45))) if failure == "oom" else None
    rate = SmoothedRate()
    yield tl.out(tl.meter(0, steps, 0.0, None, desc=FLUX_JOB))
    elapsed, since_update = 0.0, 0.0
    for step in range(1, steps + 1):
        dt = seconds_per_step * rng.gauss(1.0, 0.04)
        if step == 1:
            dt += rng.uniform(2.0, 4.0)  # first step: compile and warm-up
        elif rng.random() < 0.02:
            dt += rng.uniform(0.3, 1.2)  # the odd slow step
        dt = max(0.05, dt)
        elapsed += dt
        since_update += dt
        tl.wait(dt)
        current = rate.update(1, since_update)
        since_update = 0.0
        loss = _decaying_loss(rng, step, steps, start=0.62, floor=0.3, noise=0.2)
        yield tl.out(tl.meter(step, steps, elapsed, current, desc=FLUX_JOB,
                           postfix=f"lr: {learning_rate:.1e} loss: {loss:.3e}"))
        if step == fail_at:
            tl.wait(rng.uniform(0.2, 0.8))
            error = _oom_error(rng)
            yield tl.fail(_oom_traceback(error), error)
            return
        if step % save_every == 0 and step < steps:
            tl.wait(0.05)
            yield tl.out(f"Saving at step {step}")
            saving = rng.uniform(3.0, 6.0)
            tl.wait(saving)
            elapsed += saving + 0.05
            since_update += saving + 0.05
            yield tl.out(f"Saved to output/{FLUX_JOB}/{FLUX_JOB}_{step:09d}.safetensors")

    # 10. final save, tarball, upload
    tl.wait(rng.uniform(3.0, 6.0))
    yield tl.out(f"Saved to output/{FLUX_JOB}/{FLUX_JOB}.safetensors")
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out(
        f"output/{FLUX_JOB}/",
        f"output/{FLUX_JOB}/lora.safetensors",
        f"output/{FLUX_JOB}/config.yaml",
        f"output/{FLUX_JOB}/README.md",
    )
    if repo := ctx.value("hf_repo_id"):
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.out(f"Uploading to Hugging Face: {repo}")
        tl.wait(rng.uniform(5.0, 15.0))
    tl.wait(rng.uniform(6.0, 15.0))  # the platform uploads the weights; nothing is printed
    yield tl.succeed()


def _resolutions(text: str) -> list[int]:
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if part.isdigit() and 64 <= int(part) <= 4096:
            sizes.append(int(part))
    return sizes or [512, 768, 1024]


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


# ---- stability-ai/sdxl (cog-sdxl) -----------------------------------------------------------------

SDXL_WEIGHTS = [
    ("https://weights.replicate.delivery/default/sdxl/sdxl-vae-upcast-fix.tar", "./sdxl-cache"),
    ("https://weights.replicate.delivery/default/sdxl/safety-1.0.tar", "./safety-cache"),
]


def sdxl(ctx: ScriptContext, failure: str | None = None) -> Iterator[ScriptEvent]:
    rng, tl = ctx.rng, _Timeline(ctx)
    steps = int(ctx.value("max_train_steps"))
    batch = int(ctx.value("train_batch_size"))
    images = ctx.images if ctx.images else _default_images(rng)
    count = len(images)

    for url, dest in SDXL_WEIGHTS:
        tl.wait(rng.uniform(0.2, 0.6))
        yield tl.out(f"downloading url:  {url}", f"downloading to:  {dest}")
        took = rng.uniform(4.0, 14.0)
        tl.wait(took)
        yield tl.out(f"downloading took:  {took:.3f}s")

    if failure == "preprocess":
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.fail(_SDXL_TRACEBACK, _SDXL_ERROR)
        return
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out(f"Generating {count} captions...")
    yield from _bar_run(tl, count, rng.uniform(0.3, 0.6))
    yield tl.out(f"Generating {count} masks...")
    yield from _bar_run(tl, count, rng.uniform(0.1, 0.3))
    yield tl.out(f"Upscaling {count} images...")
    yield from _bar_run(tl, count, rng.uniform(0.8, 1.6))

    tl.wait(rng.uniform(15.0, 25.0))
    yield tl.out("Using seed " + str(ctx.value("seed") or rng.randint(0, 2**32 - 1)), "# PTI : Loaded models")
    tl.wait(rng.uniform(0.5, 1.5))
    yield tl.out(
        "text_model.embeddings.token_embedding.weight",
        "text_model.embeddings.token_embedding.weight",
        "# PTI : Loading dataset, do_cache True",
    )
    tl.wait(rng.uniform(3.0, 8.0))
    batches = max(1, math.ceil(count / batch))
    yield tl.out(
        "# PTI : Loaded dataset",
        "# PTI :  Running training ",
        f"# PTI :  Num examples = {count}",
        f"# PTI :  Num batches each epoch = {batches}",
        f"# PTI :  Num Epochs = {math.ceil(steps / batches)}",
        f"# PTI :  Instantaneous batch size per device = {batch}",
        f"  Total train batch size (w. parallel, distributed & accumulation) = {batch}",
        "# PTI :  Gradient Accumulation steps = 1",
        f"# PTI :  Total optimization steps = {steps}",
    )
    seconds_per_step = rng.uniform(0.34, 0.42) * batch / 4
    rate = SmoothedRate()
    yield tl.out(tl.meter(0, steps, 0.0, None))
    elapsed = 0.0
    for step in range(1, steps + 1):
        dt = max(0.02, seconds_per_step * rng.gauss(1.0, 0.05))
        elapsed += dt
        tl.wait(dt)
        lines = [tl.meter(step, steps, elapsed, rate.update(1, dt))]
        if step == steps // 2:
            lines.append("# PTI :  Pivot halfway")
        yield tl.out(*lines)
    tl.wait(rng.uniform(2.0, 5.0))
    yield tl.out("Saving final model for return")
    tl.wait(rng.uniform(5.0, 12.0))
    yield tl.succeed()


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
    rng, tl = ctx.rng, _Timeline(ctx)
    epochs = int(ctx.value("num_train_epochs"))
    batch = int(ctx.value("train_batch_size"))
    max_steps = int(ctx.value("max_steps"))
    rows = ctx.text_rows if ctx.text_rows else 1200
    weights_dir = "models/llama-2-7b/model_artifacts/training_weights"

    tl.wait(rng.uniform(0.2, 0.8))
    yield tl.out(f"Downloading weights to {weights_dir}...", "Downloading weights...")
    for name in LLAMA_FILES:
        tl.wait(rng.uniform(4.0, 9.0) if name.endswith(".safetensors") else rng.uniform(0.05, 0.3))
        yield tl.out(f"Downloading  https://weights.replicate.delivery/default/llama-2-7b/{name}")
    tl.wait(rng.uniform(1.0, 2.0))
    yield tl.out(
        "Local Output Dir: training_output",
        "Number of GPUs: 1",
        "[stdout]",
        "--> Running with torch dist debug set to detail",
    )
    if failure == "data":
        tl.wait(rng.uniform(2.0, 5.0))
        yield tl.out(*_LLAMA_DATA_TRACEBACK, "[stdout]")
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.fail([], _LLAMA_ERROR)
        return
    tl.wait(rng.uniform(20.0, 35.0))
    yield tl.out(
        f"--> Model {weights_dir}",
        f"--> {weights_dir} has 6738.415616 Million params",
        "trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.06220594176090199",
    )
    tl.wait(rng.uniform(2.0, 6.0))
    yield tl.out(f"--> Training Set Length = {rows}")

    per_epoch = max(1, math.ceil(rows / batch))
    if max_steps > 0:
        per_epoch = min(per_epoch, max_steps)
    seconds_per_step = rng.uniform(2.0, 2.6) * batch / 4
    total_loss = 0.0
    for epoch in range(1, epochs + 1):
        desc = f"Training Epoch{epoch}"
        rate = SmoothedRate()
        yield tl.out(tl.meter(0, per_epoch, 0.0, None, desc=desc))
        elapsed, total_loss = 0.0, 0.0
        for step in range(per_epoch):
            dt = max(0.1, seconds_per_step * rng.gauss(1.0, 0.06))
            elapsed += dt
            tl.wait(dt)
            global_step = (epoch - 1) * per_epoch + step
            loss = _decaying_loss(rng, global_step, per_epoch * epochs, start=1.9, floor=1.05, noise=0.08)
            total_loss += loss
            yield tl.out(
                f"\n step {step} is completed and loss is {_float32(loss)}",
                tl.meter(step + 1, per_epoch, elapsed, rate.update(1, dt), desc=desc),
            )
        epoch_loss = total_loss / per_epoch
        tl.wait(rng.uniform(0.5, 1.5))
        yield tl.out(
            "Max CUDA memory allocated was 14 GB",
            "Max CUDA memory reserved was 16 GB",
            "Peak active CUDA memory was 14 GB",
            "Cuda Malloc retires : 0",
            "CPU Total Peak Memory consumed during the train (max): 3 GB",
            f"Epoch {epoch}: train_perplexity={math.exp(epoch_loss):.4f}, train_epoch_loss={epoch_loss:.4f}",
        )
    tl.wait(rng.uniform(1.0, 3.0))
    yield tl.out("we are about to save the PEFT modules")
    tl.wait(rng.uniform(2.0, 5.0))
    yield tl.out("PEFT modules are saved in training_output directory", "[stdout]")
    tl.wait(rng.uniform(1.0, 2.0))
    yield tl.out("training_output/adapter_config.json", "training_output/adapter_model.bin")
    tl.wait(rng.uniform(5.0, 10.0))
    yield tl.succeed()


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
        Script("flux-fail", "ostris/flux-dev-lora-trainer", lambda c: flux(c, "oom"), "failed",
               "CUDA out of memory a third of the way through training"),
        Script("flux-fail-load", "ostris/flux-dev-lora-trainer", lambda c: flux(c, "load"), "failed",
               "missing config.json while loading the transformer"),
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
