"""A deterministic, realistic flux LoRA training log (ostris/flux-dev-lora-trainer) for bench and tests.

It follows the stage list in the reference notes: pget download, extraction, config dump (flush left,
as Cog strips indentation), job banner, model load, LoRA set-up, dataset bars, latent caching, one
bar line per step with lr and loss, checkpoints every `save_every` steps, final save and tar listing.
Each line carries the wall-clock second (from the start of the run) at which it was printed, so a
caller can rebuild the cumulative log any poll would have returned.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from simulator.progress_bars import meter

JOB = "flux_train_replicate"
WEIGHTS_URL = "https://weights.replicate.delivery/default/black-forest-labs/FLUX.1-dev/files.tar"


@dataclass(frozen=True, slots=True)
class SynthLine:
    at: float  # seconds since the run started
    text: str


def tqdm_line(
    desc: str, n: int, total: int, elapsed: float, rate: float | None, postfix: str = ""
) -> str:
    """One refresh of a tqdm bar as it appears in the log (rate in iterations per second), drawn by
    tqdm's own meter (the one the simulator uses). `postfix` may start with ", " as in the log."""
    return meter(n, total, elapsed, rate, desc=desc, postfix=postfix.removeprefix(", "))


def _config(steps: int, save_every: int, trigger: str) -> list[str]:
    """The job config as the trainer prints it: json.dumps(indent=2) with Cog's stripping applied."""
    config = {
        "job": "custom_job",
        "config": {
            "name": JOB,
            "process": [
                {
                    "type": "custom_sd_trainer",
                    "training_folder": "output",
                    "device": "cuda:0",
                    "trigger_word": trigger,
                    "network": {"type": "lora", "linear": 16, "linear_alpha": 16},
                    "save": {"dtype": "float16", "save_every": save_every, "max_step_saves_to_keep": 1},
                    "datasets": [
                        {
                            "folder_path": "input_images",
                            "caption_ext": "txt",
                            "caption_dropout_rate": 0.05,
                            "shuffle_tokens": False,
                            "cache_latents_to_disk": False,
                            "cache_latents": True,
                            "resolution": [512, 768, 1024],
                        }
                    ],
                    "train": {
                        "batch_size": 1,
                        "steps": steps,
                        "gradient_accumulation_steps": 1,
                        "train_unet": True,
                        "train_text_encoder": False,
                        "content_or_style": "balanced",
                        "gradient_checkpointing": True,
                        "noise_scheduler": "flowmatch",
                        "optimizer": "adamw8bit",
                        "lr": 0.0004,
                        "ema_config": {"use_ema": True, "ema_decay": 0.99},
                        "dtype": "bf16",
                    },
                    "model": {"name_or_path": "FLUX.1-dev", "is_flux": True, "quantize": True},
                    "sample": {"sampler": "flowmatch", "sample_every": steps + 1, "width": 1024, "height": 1024},
                }
            ],
        },
        "meta": {"name": "[name]", "version": "1.0"},
    }
    return [line.strip() for line in json.dumps(config, indent=2).splitlines()]


def flux_lines(
    steps: int = 3000,
    *,
    seed: int = 0,
    images: int = 10,
    save_every: int = 500,
    seconds_per_step: float = 1.05,
    trigger: str = "TOK",
    hf_repo: str | None = None,
) -> Iterator[SynthLine]:
    """Every line of one successful flux LoRA run, in order, each with the second it was printed."""
    rng = random.Random(seed)
    t = 0.0

    def at(delay: float) -> float:
        nonlocal t
        t += delay
        return t

    yield SynthLine(at(2.0), f"2024-09-10T05:10:35Z | INFO  | [ Initiating ] chunk_size=150M dest=. url={WEIGHTS_URL}")
    download = 24 + rng.random() * 6
    yield SynthLine(
        at(download),
        "2024-09-10T05:11:01Z | INFO  | [ Complete ] dest=. size=\"34 GB\" "
        f"total_elapsed={download:.3f}s url={WEIGHTS_URL}",
    )
    yield SynthLine(at(0.4), f"Downloaded base weights in {download + 0.4} seconds")
    yield SynthLine(at(1.0), f"Extracted {images} files from zip to input_images")
    yield SynthLine(at(0.5), "Starting train job")
    for line in _config(steps, save_every, trigger):
        yield SynthLine(t, line)
    yield SynthLine(at(0.1), "Using EMA")
    banner = "#" * 45
    for line in (banner, f"# Running job: {JOB}", banner, "", "", "Running  1 process"):
        if line:  # Cog drops empty lines
            yield SynthLine(at(0.01), line)
    for line, delay in (
        ("Loading Flux model", 0.2),
        ("Loading transformer", 4.0),
        ("Quantizing transformer", 18.0),
        ("Loading vae", 3.0),
        ("Loading t5", 9.0),
        ("Quantizing T5", 12.0),
        ("Loading clip", 1.0),
        ("making pipe", 0.5),
        ("preparing", 0.5),
        ("create LoRA network. base dim (rank): 16, alpha: 16", 0.3),
        ("neuron dropout: p=None, rank dropout: p=None, module dropout: p=None", 0.0),
        ("create LoRA for Text Encoder: 0 modules.", 0.0),
        ("create LoRA for U-Net: 494 modules.", 0.1),
        ("enable LoRA for U-Net", 0.1),
        ("Dataset: input_images", 0.5),
        ("-  Preprocessing image dimensions", 0.1),
    ):
        yield SynthLine(at(delay), line)
    yield SynthLine(at(0.05), tqdm_line("", images, images, 0.0, 1254.28))
    yield SynthLine(at(0.01), f"-  Found {images} images")
    yield SynthLine(at(0.01), "Bucket sizes for input_images:")
    yield SynthLine(t, f"1024x1024: {images} files")
    yield SynthLine(t, "1 buckets made")
    yield SynthLine(at(0.1), "Caching latents for input_images")
    yield SynthLine(t, "- Keeping latents in memory")
    cache_rate = 3.0 + rng.random() * 0.3
    for n in sorted({*range(0, images, max(1, images // 3)), images}):
        bar = tqdm_line("", n, images, n / cache_rate, cache_rate if n else None)
        yield SynthLine(at(1 / cache_rate), f"Caching latents: {bar}")
    yield SynthLine(at(2.0), tqdm_line(JOB, 0, steps, 0.0, None))

    started = t
    final = f"output/{JOB}/{JOB}.safetensors"
    for step in range(1, steps + 1):
        duration = seconds_per_step * (0.97 + rng.random() * 0.06)
        now = at(duration)
        loss = 0.18 + 0.35 * math.exp(-step / (steps / 4 + 1)) + rng.gauss(0, 0.04)
        rate = step / (now - started)
        postfix = f", lr: 4.0e-04 loss: {abs(loss):.3e}"
        yield SynthLine(now, tqdm_line(JOB, step, steps, now - started, rate, postfix))
        if save_every and step % save_every == 0 and step < steps:
            yield SynthLine(at(0.2), f"Saving at step {step}")
            yield SynthLine(at(3.0), f"Saved to output/{JOB}/{JOB}_{step:09d}.safetensors")
    yield SynthLine(at(3.0), f"Saved to {final}")
    yield SynthLine(at(0.5), f"tar -cvf output.tar output/{JOB}")
    for name in ("lora.safetensors", "config.yaml", f"{JOB}.safetensors"):
        yield SynthLine(at(0.3), f"output/{JOB}/{name}")
    if hf_repo:
        yield SynthLine(at(1.0), f"Uploading to Hugging Face: {hf_repo}")


def flux_log(steps: int = 3000, **options: object) -> str:
    """The whole log of one run, as `logs` reads once it has finished."""
    return "".join(line.text + "\n" for line in flux_lines(steps, **options))  # type: ignore[arg-type]


def snapshots(lines: Iterable[SynthLine], every: float) -> Iterator[tuple[float, str]]:
    """The cumulative log a poll every `every` seconds would see: (poll time, whole log so far)."""
    parts: list[str] = []
    text = ""
    poll = every
    for line in lines:
        while line.at > poll:
            if parts:
                text += "".join(parts)
                parts.clear()
            yield poll, text
            poll += every
        parts.append(line.text + "\n")
    yield poll, text + "".join(parts)


def flux_log_of_size(size: int, *, seed: int = 0) -> str:
    """A flux log with enough steps to reach about `size` bytes of UTF-8 (for throughput benches)."""
    probe = flux_log(3000, seed=seed)
    per_step = len(probe.encode()) / 3000
    steps = max(1, int(size / per_step * 0.97))
    text = flux_log(steps, seed=seed)
    while len(text.encode()) < size:  # wider step counters make later steps longer; top up if short
        steps = int(steps * size / len(text.encode())) + 1
        text = flux_log(steps, seed=seed)
    return text
