"""What a trainer's log says: stage, step/total, timing from its progress bar, loss and lr, errors.

Replicate returns the WHOLE log on every poll and every `logs` webhook. `LogParser.feed` takes that
cumulative text again and again and only reads the part it has not seen, so following a training
costs about one pass over its log however often it is polled. Lines end at `\\r`, `\\n` or `\\r\\n`;
a line is only read once its terminator has arrived (`finish()` reads the last one at the end).

The parser knows the trainers described in the reference notes (ai-toolkit: the flux LoRA trainer and
the qwen-image one; cog-sdxl; cog-llama-template's LLM fine-tunes; diffusers DreamBooth scripts) and
falls back on generic tqdm bars and `step N/M` counters. Only bars that belong to training count as
progress: the trainer's named job bar, a bar seen once training has begun, or a bar whose total
equals the configured number of steps. The short bars of preprocessing (`100%|██████████| 10/10`
over the images, `Caching latents: …`, `Loading checkpoint shards: …`), of sampling (`Generating
Images: 2/4`) and of evaluation (`evaluating Epoch: …`) never do.

The stage machine only moves forward, and so only CERTAIN signals may move it into the finishing
stages: a save printed while the training bar has not reached its last step is a mid-run checkpoint
(ai-toolkit prints `Saved to …/optimizer.pt` for every save; the LLM recipes save PEFT modules after
any epoch; diffusers saves `checkpoint-500`), so it is only "saving" once training is done. Messages
that only ever come after training (the tar/zip listing, `Saving final model for return`, the
wrapper's `Training completed`) are certain on their own.
"""

from __future__ import annotations

import bisect
import copy
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate, compress, islice, repeat
from typing import overload
from math import isfinite
from operator import add, le, lt, mul, ne


class Stage(StrEnum):
    QUEUED = "queued"
    BOOTING = "booting"
    DOWNLOADING = "downloading"
    PREPARING = "preparing"
    CAPTIONING = "captioning"
    LOADING = "loading"
    CACHING = "caching"
    TRAINING = "training"
    SAVING = "saving"
    UPLOADING = "uploading"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def label(self) -> str:
        """Human text for the stage, e.g. "downloading weights"."""
        return _LABELS[self]

    @property
    def order(self) -> int:
        """Position on the timeline. The three outcomes share the last position: only one happens."""
        return _ORDER[self]

    @property
    def terminal(self) -> bool:
        return self in (Stage.SUCCEEDED, Stage.FAILED, Stage.CANCELED)

    @classmethod
    def timeline(cls) -> tuple[Stage, ...]:
        """The stages a training passes through, in order, before its outcome."""
        return tuple(stage for stage in cls if not stage.terminal)


_LABELS: dict[Stage, str] = {
    Stage.QUEUED: "queued",
    Stage.BOOTING: "booting",
    Stage.DOWNLOADING: "downloading weights",
    Stage.PREPARING: "preparing data",
    Stage.CAPTIONING: "captioning images",
    Stage.LOADING: "loading model",
    Stage.CACHING: "caching latents",
    Stage.TRAINING: "training",
    Stage.SAVING: "saving weights",
    Stage.UPLOADING: "uploading",
    Stage.SUCCEEDED: "succeeded",
    Stage.FAILED: "failed",
    Stage.CANCELED: "canceled",
}
_ORDER: dict[Stage, int] = {stage: min(index, 10) for index, stage in enumerate(Stage)}


class Series(Sequence[tuple[int, float]]):
    """(step, value) points, one per step, sorted by step: two compact arrays, 16 bytes a point.

    A million-step run keeps two series (loss, lr): about 32 MB, where a list of tuples took ~150 MB
    and gave the garbage collector millions of objects to walk. It reads like a list of tuples.
    """

    __slots__ = ("steps", "values")

    def __init__(self, points: Iterable[tuple[int, float]] = ()) -> None:
        self.steps = array("q")
        self.values = array("d")
        for step, value in points:
            self.record(step, value)

    def __len__(self) -> int:
        return len(self.steps)

    def __sizeof__(self) -> int:  # its arrays' buffers: what bounds the trackers' memory
        return object.__sizeof__(self) + self.steps.buffer_info()[1] * 8 + self.values.buffer_info()[1] * 8

    @overload
    def __getitem__(self, index: int) -> tuple[int, float]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, float]]: ...
    def __getitem__(self, index: int | slice) -> tuple[int, float] | list[tuple[int, float]]:
        if isinstance(index, slice):
            return list(zip(self.steps[index], self.values[index]))
        return self.steps[index], self.values[index]

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.steps, self.values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Series):
            return self.steps == other.steps and self.values == other.values
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Series({list(self)!r})"

    def __deepcopy__(self, memo: dict[int, object]) -> Series:
        copied = Series()
        copied.steps, copied.values = array("q", self.steps), array("d", self.values)
        return copied

    def record(self, step: int, value: float) -> None:
        """One point per step, kept sorted by step; a repeated step keeps its latest value."""
        steps = self.steps
        if not steps or steps[-1] < step:
            steps.append(step)
            self.values.append(value)
        elif steps[-1] == step:
            self.values[-1] = value
        else:
            at = bisect.bisect_left(steps, step)
            if steps[at] == step:
                self.values[at] = value
            else:
                steps.insert(at, step)
                self.values.insert(at, value)

    def extend(self, steps: list[int], values: list[float], order: int | None = None) -> None:
        """`record` for many points, at C speed when they only move forward: a run of bar lines
        may begin by redrawing the last step (after a message) and may draw a step twice.
        `order` (from `step_order(steps)`, when the caller has it): 2 strictly increasing,
        1 never decreasing, 0 anything."""
        start, count = 0, len(steps)
        if self.steps:
            last = self.steps[-1]
            while start < count and steps[start] <= last:
                self.record(steps[start], values[start])
                start += 1
            if start:
                steps, values, order = steps[start:], values[start:], None
        if not steps:
            return
        if order is None:
            order = step_order(steps)
        if order == 0:
            for step, value in zip(steps, values):
                self.record(step, value)
            return
        if order == 1:  # a step drawn twice keeps its last value
            keep = [*map(ne, steps, islice(steps, 1, None)), True]
            steps, values = list(compress(steps, keep)), list(compress(values, keep))
        self.steps.extend(steps)
        self.values.extend(values)


def step_order(steps: list[int]) -> int:
    """2 if strictly increasing, 1 if never decreasing, else 0."""
    if all(map(lt, steps, islice(steps, 1, None))):
        return 2
    return 1 if all(map(le, steps, islice(steps, 1, None))) else 0


@dataclass
class LogState:
    """Everything the log has told so far. Plain data: copy it, compare it, show it."""

    stage: Stage = Stage.QUEUED
    step: int | None = None
    total_steps: int | None = None
    train_percent: float | None = None  # 0–100
    bar_elapsed: float | None = None  # seconds, the trainer's own `[elapsed<…`
    bar_remaining: float | None = None  # seconds, the trainer's own `…<remaining`
    rate: float | None = None  # steps per second
    loss: float | None = None
    lr: float | None = None
    losses: Series = field(default_factory=Series)  # (step, loss), one per step
    lrs: Series = field(default_factory=Series)  # (step, lr), one per step
    error_lines: list[str] = field(default_factory=list)  # the most recent MAX_ERROR_LINES
    traceback: str | None = None  # the last traceback, through its error line
    opaque: bool = False  # the trainer runs where its output cannot be seen (a captured subprocess)
    sample_every: int | None = None  # ai-toolkit samples every N steps (its config), pausing training
    sample_seconds: float | None = None  # how long the last complete sampling took (its own bar)
    lines: int = 0  # complete lines processed
    consumed: int = 0  # characters of the cumulative log consumed

    def copy(self) -> LogState:
        return copy.deepcopy(self)


MAX_ERROR_LINES = 20
RUN_CHUNK = 64 * 1024  # characters of a run of bar lines read in bulk at once: small lists stay in cache
MAX_TRACEBACK_LINES = 400  # a recursion error can print thousands; the head and error line suffice

# --- patterns, compiled once ---------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
# After a bar's cells: ` 310/1000`, then the timing ` [02:10<04:50,  2.38it/s` (read lazily).
_COUNTER = re.compile(r"\s*(\d+)/(\d+)")
_TIMING = re.compile(
    r"\s*\[([\d:]+)(?:<([\d:]+|\?))?(?:,\s*(?:(\d+(?:\.\d+)?)\s*(s/it|it/s|s/\w+|\w+/s)|\?\s*\S*))?"
)
# A bar past its total, or without one: tqdm then prints `1002it [06:20,  2.68it/s]`.
_NO_TOTAL = re.compile(r"(?:^|:\s)\s*(\d+)it \[")
# The postfix of ai-toolkit's bar, at the end of the line: `, lr: 4.0e-04 loss: 2.472e-01]`.
_FLUX_POSTFIX_TEXT = r", lr: (\S+) loss: ([^\s\]]+)\]"
_FLUX_POSTFIX = re.compile(_FLUX_POSTFIX_TEXT + "$")
# diffusers' `progress_bar.set_postfix(loss=…, lr=…)`: `, loss=0.312, lr=0.0001]`.
_DIFFUSERS_POSTFIX_TEXT = r", loss=([^\s,\]]+), lr=([^\s,\]]+)\]"
_BAR_LR = re.compile(r"\blr[=:]\s*(" + _NUM + r")")
_BAR_LOSS = re.compile(r"\bloss[=:]\s*(" + _NUM + r")")
_LOSS = re.compile(r"\bloss[=:]?\s*(" + _NUM + r")", re.IGNORECASE)
_LR = re.compile(r"\blr[=:]\s*(" + _NUM + r")", re.IGNORECASE)
# cog-llama-template prints the loss tensor itself: `loss is tensor(1.2345, device='cuda:0')`.
_STEP_LINE = re.compile(r"\bstep (\d+) is completed and loss is (?:tensor\()?(" + _NUM + ")")
_STEP_COUNTER = re.compile(r"(?i:\b(?:global[ _])?(?:step|iter(?:ation)?)s?)\s*[:=#]?\s*\[?\s*(\d+)\s*(?:/|of)\s*(\d+)")
_BARE_COUNTER = re.compile(r"(?<![\w./:-])(\d+)/(\d+)(?![\w./:-])")
_LONE_COUNTER = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_CONFIG_STEPS = re.compile(r'^"(?:steps|max_train_steps|max_steps|num_train_steps)":\s*(\d+),?$')
_CONFIG_NAME = re.compile(r'^"name":\s*"([^"]+)",?$')
_CONFIG_SAMPLE_EVERY = re.compile(r'^"sample_every":\s*(\d+),?$')
_SAMPLING = "Generating Images"  # ai-toolkit's sampling bar (toolkit/stable_diffusion_model.py)
_TOTAL_STEPS = re.compile(r"Total optimization steps\s*=\s*(\d+)")
_WRAPPER_STEPS = re.compile(r"\bTraining: (\d+) steps\b")  # qwen-image-lora-trainer's summary line
_TRAIN_SET = re.compile(r"Training Set Length\s*=\s*(\d+)")
_EPOCHS = re.compile(r"(?i:num[_ ]?(?:train[_ ])?epochs)\W{1,4}(\d+)")
_ARG = re.compile(r"'--(num_epochs|batch_size_training|nproc_per_node)=(\d+)'")
_COUNTS = re.compile(
    r"(?:Extracted|Generating|Upscaling|Found|Num examples =)\s*(\d+)\s*(?:files|captions|masks|images|$)"
    r"|^(?:\d+x\d+):\s*(\d+) files"
)
_JOB = re.compile(r"^# Running job:\s*(\S+)")
_WRAPPER_JOB = re.compile(r"Starting training: (\S+)$")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?::\s?.*)?$")
_ERROR_LINE = re.compile(
    r"^(?:(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception)(?::.*)?$|(?:ERROR|FATAL|Error|error)\b)"
    r"|\|\s*ERROR\s*\|"
    r"|CUDA out of memory"
)
_PER_EPOCH = re.compile(r"(?i)\bepoch\s*(\d+)$")  # `Training Epoch0`: a bar per epoch, restarting at 0
_DIGITS = re.compile(r"\d+")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# The file listing of the output archive: printed only once training is over.
_OUTPUT_LISTING = ("output/", "training_output/", "training_out/", "/src/output/")
_TRAINING_ORDER = _ORDER[Stage.TRAINING]  # a constant for the hot path
_HEAD = 500  # error patterns look at the start of a line only: a log line can be megabytes long

# Bar descriptions that name preprocessing, sampling or evaluation, never training.
_NOT_TRAINING_DESCS = (
    "cach", "checkpoint shard", "generat", "upscal", "caption", "mask", "download", "fetch",
    "extract", "preprocess", "bucket", "loading", "map", "token", "sampl", "resiz", "convert",
    "evaluat", "valid", "infer", "upload", "pipeline",
)
_TRAINING_DESCS = ("train", "epoch", "step", "optimi", "fine-tun", "finetun")
# Saves that may be mid-run checkpoints: finishing only once the training bar has reached its end.
_MAYBE_FINAL_SAVES = (
    "Saved to ", "Saved checkpoint to ", "Saved optimizer to ", "Saving weights to W&B",
    "about to save the PEFT modules", "PEFT modules are saved", "Saved state to ",
    "Saving current state to ", "Model weights saved in ",
)
# Messages printed only after training is over.
_FINAL_MESSAGES = (
    "Saving final model for return", "INFO:__main__:Training completed", "INFO:__main__:Found trained LoRA",
    "INFO:__main__:Created ",
)


def _seconds(text: str | None) -> float | None:
    """tqdm's `MM:SS` / `H:MM:SS` as seconds; `?` or nothing is unknown."""
    if not text or text == "?":
        return None
    total = 0
    for part in text.split(":"):
        if not part:
            return None
        total = total * 60 + int(part)
    return float(total)


def _number(text: str | None) -> float | None:
    """A finite number, or None. NaN/inf are left out: NaN would make states unequal to themselves
    and neither is valid JSON; a diverged run shows up in its error lines instead."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if isfinite(value) else None


def _finite(texts: list[str]) -> list[float] | None:
    """Numbers for many texts at C speed, or None if one is unreadable or not finite (as `_number`)."""
    try:
        values = list(map(float, texts))
    except ValueError:
        return None
    return values if isfinite(sum(values)) else None  # NaN and inf carry through a sum


def _postfix(line: str, pos: int) -> tuple[str | None, str | None]:
    """`lr` and `loss` from a bar's postfix (`lr: 1e-4`, `loss=0.3`), after position `pos`."""
    lr = loss = None
    if "lr" in line and (found := _BAR_LR.search(line, pos)):
        lr = found.group(1)
    if "loss" in line and (found := _BAR_LOSS.search(line, pos)):
        loss = found.group(1)
    return lr, loss


def _desc_key(desc: str) -> str:
    """A bar's identity: its description with numbers blanked. cog-sdxl rewrites the description
    every step (`# PTI :step: 349, epoch: 116`): that is still the same bar."""
    return _DIGITS.sub("#", desc) if desc else desc


def _prefix_pattern(desc: str) -> str:
    """A pattern for the start of a bar line with this description, whatever its numbers."""
    parts = re.split(r"(\d+)", desc)  # text, digits, text, …
    return "".join(re.escape(part) if i % 2 == 0 else r"\d+" for i, part in enumerate(parts))


class _MainBar:
    """Patterns for the trainer's main bar once its description (`flux_train_replicate:`) is known."""

    def __init__(self, desc: str, *, per_epoch: bool = False) -> None:
        prefix = _prefix_pattern(desc) + ":"
        self.per_epoch = per_epoch  # `Training Epoch0`: one bar per epoch, on every GPU
        self.prefix = re.compile(prefix)
        self.literal = desc + ":" if not _DIGITS.search(desc) else None  # a cheap startswith test
        # (epoch,) percent, step, total — matched at the start of a line (possessive: no backtracking)
        head = prefix[: prefix.rindex(r"\d+")] + r"(\d+)" + prefix[prefix.rindex(r"\d+") + 3 :] if per_epoch else prefix
        self.counter = re.compile(head + r" *+(\d++)%\|[^|\n]*+\| *+(\d++)/(\d++)")
        # per-epoch bars in bulk: (epoch, step, total) of each; rank 0's step lines between them
        self.epoch_bar = re.compile(head + r" *+\d++%\|[^|\n]*+\| *+(\d++)/(\d++) \[")
        self.step_line = re.compile(r"\nstep (\d+) is completed and loss is (?:tensor\()?(" + _NUM + ")")
        # the same, for the bulk path: the step of every line of a run (which all start with the
        # description: `other_line` split them off); more than one per line fails the count check
        self.step_at_start = re.compile(r"\| *+(\d++)/\d++ \[")
        # lr and loss, anchored on the newline after the line
        self.lr_loss_at_end = re.compile(_FLUX_POSTFIX_TEXT + r"\n")
        self.loss_lr_at_end = re.compile(_DIFFUSERS_POSTFIX_TEXT + r"\n")
        # the newline before a line that is NOT the main bar's (nor, per epoch, a step line)
        self.other_line = re.compile(r"\n(?!" + prefix + (r"|step \d+ is completed and loss is " if per_epoch else "") + ")")
        self._loss_after: dict[str, re.Pattern[str]] = {}

    def starts(self, line: str) -> bool:
        if self.per_epoch and line.startswith("step "):
            return True
        if self.literal is not None:
            return line.startswith(self.literal)
        return self.prefix.match(line) is not None

    def loss_after(self, lr_text: str, *, diffusers: bool = False) -> re.Pattern[str]:
        """`lr_loss_at_end` (or `loss_lr_at_end`) with a given lr: the loss as the one group, and
        a literal to search for (faster)."""
        key = ("d" if diffusers else "a") + lr_text
        pattern = self._loss_after.get(key)
        if pattern is None:
            if len(self._loss_after) > 16:  # a decaying lr: do not keep one pattern per value
                self._loss_after.clear()
            if diffusers:
                text = r", loss=([^\s,\]]+)" + re.escape(f", lr={lr_text}]") + r"\n"
            else:
                text = re.escape(f", lr: {lr_text} loss: ") + r"([^\s\]]+)\]\n"
            pattern = self._loss_after[key] = re.compile(text)
        return pattern


class LogParser:
    """Incremental parser of one training's cumulative log."""

    def __init__(self, configured_steps: int | None = None) -> None:
        """`configured_steps`: the steps the training was asked for (its input), when known."""
        self.state = LogState()
        self._configured = configured_steps if configured_steps and configured_steps > 0 else None
        self.state.total_steps = self._configured
        self._job: str | None = None  # the trainer's job name: its main bar carries it
        self._main_key: str | None = None  # identity (`_desc_key`) of the bar accepted as training
        self._main: _MainBar | None = None  # set when that bar is named: enables the bulk path
        self._image_counts: set[int] = set()
        # LLM recipes: the printed arguments and set length give the total before any bar
        self._epochs: int | None = None
        self._train_set: int | None = None
        self._batch: int | None = None
        self._processes: int | None = None
        # per-epoch bars (`Training Epoch0`) restart at 0 and every GPU prints its own
        self._first_epoch: int | None = None
        self._per_epoch: int | None = None
        self._step_epoch = 0  # epochs seen by `step N is completed` lines (rank 0 only)
        self._last_step_line = -1
        self._step_offset = 0  # the same lines without a known epoch length: a running offset
        # The last training bar line, where its timing starts, and whether its remaining time
        # covers the whole training; read once per batch of lines (only the last bar matters).
        self._timing: tuple[str, int, bool] | None = None
        self._tb: list[str] | None = None  # the traceback being collected
        self._pending = ""  # the unterminated end of the last log fed
        self._lr_text: str | None = None  # the main bar's last lr, as printed

    # --- feeding ---------------------------------------------------------------------------------
    def feed(self, logs: str | None) -> bool:
        """Read what is new in the cumulative `logs`; True if the state changed.

        A log no longer than what was already read (an out-of-order webhook) is ignored, as is an
        unterminated last line until it completes. A trailing `\\r` waits too: it may be half of `\\r\\n`.
        """
        state = self.state
        if not logs or len(logs) <= state.consumed:
            return False
        start = state.consumed
        limit = len(logs) - 1 if logs[-1] == "\r" else len(logs)
        last = max(logs.rfind("\n", start, limit), logs.rfind("\r", start, limit))
        if last < 0:
            self._pending = logs[start:]
            return False
        if logs.find("\r", start, last + 1) >= 0:
            text = ("\n" + logs[start : last + 1]).replace("\r\n", "\n").replace("\r", "\n")
            self._read(text, 1, len(text))
        else:
            self._read(logs, start, last + 1)  # no copy: the patterns take positions
        state.consumed = last + 1
        self._pending = logs[last + 1 :]  # kept only for finish(): usually a fraction of a line
        return True

    def finish(self) -> bool:
        """The training has ended: read the pending unterminated last line, if any. True if it changed."""
        pending, self._pending = self._pending, ""
        if not pending:
            return False
        text = ("\n" + pending + "\n").replace("\r\n", "\n").replace("\r", "\n")
        self._read(text, 1, len(text))
        self.state.consumed += len(pending)
        return True

    def _read(self, text: str, pos: int, end: int) -> None:
        """Process the lines in text[pos:end], each ending with "\\n"."""
        state = self.state
        # The bulk patterns anchor on the "\n" before a line: read a first line without one alone.
        while pos < end and (self._main is None or pos == 0 or text[pos - 1] != "\n"):
            stop = text.index("\n", pos)
            self._line(text[pos:stop])
            state.lines += 1
            pos = stop + 1
        if pos < end:
            self._read_training(text, pos, end)
        self._apply_timing()
        if self._tb is not None:  # a traceback still being printed: show what has arrived
            self.state.traceback = "\n".join(self._tb)

    def _read_training(self, text: str, pos: int, end: int) -> None:
        """Once the main bar is known: runs of its lines in bulk, every other line one by one."""
        main = self._main
        assert main is not None
        for gap in main.other_line.finditer(text, pos - 1, end - 1):  # the last "\n" starts no line
            start = gap.start() + 1
            if start > pos:
                self._main_run(text, pos, start)
            stop = text.index("\n", start)
            self._line(text[start:stop])
            self.state.lines += 1
            pos = stop + 1
            if self._main is not main:  # the main bar changed (a named bar replaced a bare one)
                if pos < end:
                    self._read(text, pos, end)
                return
        if pos < end:
            self._main_run(text, pos, end)

    def _main_run(self, text: str, start: int, end: int) -> None:
        """Lines text[start:end] that all begin with the main bar's description.

        Recording a point per step is most of the work on a long log, so a run whose every line
        has the usual shape is read with C-level scans instead of a loop. Each pattern matches at
        most once per line (anchored on the newline before or after it), so a count equal to the
        number of lines means every line matched; the result is exactly what `_line` would give
        line by line, which is what any run that does not fit goes through.
        """
        main = self._main
        assert main is not None
        while end - start > RUN_CHUNK:  # a long run in chunks: small lists stay in the CPU's cache
            middle = text.find("\n", start + RUN_CHUNK, end - 1) + 1
            if middle <= 0:
                break
            self._main_run(text, start, middle)
            start = middle
        count = text.count("\n", start, end)
        self._bulk_or_lines(main, text, start, end, count)
        self.state.lines += count

    def _bulk_or_lines(self, main: _MainBar, text: str, start: int, end: int, count: int | None = None) -> None:
        """A run in bulk; one that does not fit (a first bar without a postfix, a warning glued
        onto a refresh) in halves, down to a few lines read one by one."""
        if count is None:
            count = text.count("\n", start, end)
        bulk = self._bulk_epochs if main.per_epoch else self._bulk
        if count >= 4 and bulk(main, text, start, end, count):
            return
        if count >= 64:
            middle = text.index("\n", start + (end - start) // 2) + 1
            if start < middle < end:
                self._bulk_or_lines(main, text, start, middle)
                self._bulk_or_lines(main, text, middle, end)
                return
        pos = start
        while pos < end:
            stop = text.index("\n", pos)
            self._line(text[pos:stop])
            pos = stop + 1

    def _bulk(self, main: _MainBar, text: str, start: int, end: int, count: int) -> bool:
        steps = main.step_at_start.findall(text, start, end)
        if len(steps) != count:
            return False
        state = self.state
        if text.find("loss", start, end) < 0 and text.find("lr", start, end) < 0:
            losses: list[float] | None = None  # a bar with no postfix (cog-sdxl): steps only
            lrs: list[float] | None = None
            lr_value: float | None = None
        else:
            lr_value = None
            lrs = None
            lr_texts: Sequence[str] | None = None
            try:
                diffusers = text.find(", loss=", start, end) >= 0  # set_postfix(loss=…, lr=…)
                # The lr rarely changes: "a loss, then this lr" (or the reverse) is the fastest scan.
                same_lr = main.loss_after(self._lr_text, diffusers=diffusers) if self._lr_text else None
                losses_text: Sequence[str] = same_lr.findall(text, start, end) if same_lr else []
                if len(losses_text) == count:
                    lr_value = float(self._lr_text or "")
                else:
                    pairs = (main.loss_lr_at_end if diffusers else main.lr_loss_at_end).findall(text, start, end)
                    if len(pairs) != count:
                        return False
                    first, second = zip(*pairs)
                    losses_text, lr_texts = (first, second) if diffusers else (second, first)
                if len(steps) > 1 and not all(keep := [*map(ne, steps, islice(steps, 1, None)), True]):
                    # A step drawn twice in a row (diffusers draws each twice): its last drawing
                    # counts, as line by line; the others need no converting.
                    steps, losses_text = list(compress(steps, keep)), list(compress(losses_text, keep))
                    if lr_texts is not None:
                        lr_texts = list(compress(lr_texts, keep))
                lrs = list(map(float, lr_texts)) if lr_texts is not None else None
                if lrs is not None and not isfinite(sum(lrs)):
                    return False
                losses = list(map(float, losses_text))
            except ValueError:
                return False  # an unreadable number: `_line` leaves that point out
            if not all(map(isfinite, losses)):
                return False
        if losses is not None:
            numbers = list(map(int, steps))
            order = step_order(numbers)
            state.losses.extend(numbers, losses, order)
            state.lrs.extend(numbers, lrs if lrs is not None else [lr_value or 0.0] * len(numbers), order)
        # The last line again, one by one: it sets step, total, percent, lr, loss, timing, stage.
        last = text.rindex("\n", start - 1, end - 1) + 1
        self._line(text[last : end - 1])
        return True

    def _bulk_epochs(self, main: _MainBar, text: str, start: int, end: int, count: int) -> bool:
        """A run of per-epoch bar lines (every GPU's) and rank 0's step lines, in bulk, with the
        result `_line` would give line by line: the furthest bar before the last one sets the
        step (line by line, the furthest wins), the step lines give the losses in order, and the
        last bar line is read again for its timing, between the step lines before and after it."""
        bars = main.epoch_bar.findall(text, start, end)
        if not bars:
            return False
        last = text.rindex("\n", start - 1, end - 1) + 1
        while not main.counter.match(text, last):
            if last <= start:
                return False
            last = text.rindex("\n", start - 1, last - 1) + 1
        stop = text.index("\n", last)
        before = main.step_line.findall(text, start - 1, last)  # anchored on the newline before
        after = main.step_line.findall(text, stop, end)
        if len(bars) + len(before) + len(after) != count:
            return False
        losses_before, losses_after = _finite([loss for _, loss in before]), _finite([loss for _, loss in after])
        if losses_before is None or losses_after is None:
            return False  # an unreadable loss: `_line` leaves that point out
        epochs, ns, totals = zip(*bars)
        keys = list(map(add, map(mul, map(int, epochs), repeat(1 << 40)), map(int, ns)))
        for index in (0, keys.index(max(keys))):
            self._epoch_bar_step(int(epochs[index]), int(ns[index]), int(totals[index]))
        self._step_lines([int(n) for n, _ in before], losses_before)
        line = text[last:stop]
        match = main.counter.match(line)
        assert match is not None
        self._training_step(int(match.group(3)), int(match.group(4)), match.group(2), None, None, match, line, match.end())
        self._step_lines([int(n) for n, _ in after], losses_after)
        return True

    def _step_lines(self, ns: list[int], losses: list[float]) -> None:
        """`_step_line` for many steps and (finite) losses; at C speed once the epoch length is known."""
        per_epoch = self._per_epoch or self._llm_per_epoch()
        if not ns:
            return
        if not per_epoch:
            for n, loss in zip(ns, losses):
                self._step_line(n, loss)
            return
        resets = list(map(le, ns, [self._last_step_line, *ns[:-1]]))  # n restarts: a new epoch
        for previous in compress([self._last_step_line, *ns[:-1]], resets):
            self._step_offset += previous + 1
        epochs = list(accumulate(resets, initial=self._step_epoch))[1:]
        steps = list(map(add, map(mul, epochs, repeat(per_epoch)), map(add, ns, repeat(1))))
        self._last_step_line, self._step_epoch = ns[-1], epochs[-1]
        state = self.state
        top = max(steps)
        if state.step is None or top > state.step:
            state.step = top
            if state.total_steps:
                state.train_percent = min(100.0, max(0.0, top * 100.0 / state.total_steps))
        state.loss = losses[-1]
        state.losses.extend(steps, losses)
        self._advance(Stage.TRAINING)

    def _epoch_bar_step(self, epoch: int, n: int, total: int) -> None:
        """One per-epoch bar refresh's step (no timing): what `_training_step` does with it."""
        step, total, _ = self._epoch_step(epoch, n, total)
        state = self.state
        if state.step is not None and step < state.step:
            step = state.step
        state.step, state.total_steps = step, total
        if total > 0:
            state.train_percent = min(100.0, step * 100.0 / total)
        if state.stage.order < _TRAINING_ORDER:
            state.stage = Stage.TRAINING

    # --- one line --------------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        main = self._main
        if main is not None and main.starts(line) and self._main_bar(line, main):
            return
        if self._tb is not None:
            self._traceback_line(line)
        if "%|" in line and self._bar(line):
            return
        if "it [" in line and self._main_key is not None and self._past_total(line):
            return
        self._message(line)

    def _main_bar(self, line: str, main: _MainBar) -> bool:
        """A line of the trainer's main bar, recognised by its description."""
        match = main.counter.match(line)
        if match is None:
            return False
        if main.per_epoch:
            n, total = int(match.group(3)), int(match.group(4))
            self._training_step(n, total, match.group(2), None, None, match, line, match.end())
            return True
        n, total = int(match.group(2)), int(match.group(3))
        lr = loss = None
        if found := _FLUX_POSTFIX.search(line, match.end()):
            lr, loss = found.group(1), found.group(2)
            if _number(lr) is not None:
                self._lr_text = lr  # for the bulk path's guess
        else:
            lr, loss = _postfix(line, match.end())
        self._training_step(n, total, match.group(1), lr, loss, None, line, match.end())
        return True

    def _bar(self, line: str) -> bool:
        """A tqdm bar anywhere in the line. True if it was taken as training progress."""
        pct = line.find("%|")
        head = line[:pct]
        digits = head.rstrip("0123456789")
        if len(digits) == len(head):
            return False
        cells = line.find("|", pct + 2)
        match = _COUNTER.match(line, cells + 1) if cells > 0 else None
        if match is None:
            return False
        desc = digits.rstrip().removesuffix(":").rstrip()
        if "\x1b" in desc:
            desc = _ANSI.sub("", desc).strip()
        n, total = int(match.group(1)), int(match.group(2))
        if desc.startswith(_SAMPLING):  # a sampling bar: not training, and nothing else either
            if n == total and total and (timing := _TIMING.match(line, match.end())):
                self.state.sample_seconds = _seconds(timing.group(1))
            if self.state.stage is Stage.QUEUED:
                self.state.stage = Stage.BOOTING
            return True
        key = _desc_key(desc)
        epoch = _PER_EPOCH.search(desc) if "poch" in desc and "step" not in desc.lower() else None
        if not self._is_training_bar(desc, key, total, epoch is not None):
            return False
        if self._main_key is None or (self._main_key == "" and key and not epoch):
            self._main_key = key
            # A named bar that starts its lines (as in Cog's stripped logs) gets the bulk path.
            if desc and line.startswith(desc + ":") and (epoch is None or epoch.end() == len(desc)):
                self._main = _MainBar(desc, per_epoch=epoch is not None)
                if self._main_bar(line, self._main):
                    return True
        lr, loss = _postfix(line, match.end())
        self._training_step(n, total, head[len(digits) :], lr, loss, epoch, line, match.end())
        return True

    def _is_training_bar(self, desc: str, key: str, total: int, per_epoch: bool) -> bool:
        if self._is_not_training(desc):
            return False
        main = self._main_key
        if main is not None:
            if key == main:
                return True
            if main == "" and total == self.state.total_steps:
                return True  # the bare bar has grown a description (cog-sdxl's set_description)
            return total == self.state.total_steps and self.state.stage is Stage.TRAINING and not per_epoch
        lowered = desc.lower()
        if desc and ((self._job and desc.endswith(self._job)) or any(w in lowered for w in _TRAINING_DESCS)):
            return True
        if self._configured is not None and total == self._configured:
            return True
        if desc or total in self._image_counts:
            return False
        # A bare bar with nothing known about the run yet (a lone line) is taken at its word.
        return self.state.stage.order <= Stage.BOOTING.order

    @staticmethod
    def _is_not_training(desc: str) -> bool:
        lowered = desc.lower()
        return any(word in lowered for word in _NOT_TRAINING_DESCS)

    def _past_total(self, line: str) -> bool:
        """`desc: 1002it [06:20, 2.68it/s]`: tqdm drops the total once n passes it (cog-sdxl runs
        whole epochs, so its bar ends at 1002 of 1000). Same bar, same total: training is complete."""
        match = _NO_TOTAL.search(line)
        if match is None or self.state.stage is not Stage.TRAINING or not self.state.total_steps:
            return False
        desc = line[: match.start()].strip()
        if _desc_key(desc) != self._main_key:
            return False
        n = int(match.group(1))
        total = self.state.total_steps
        if n < total:
            return False
        self._training_step(n, total, "100", None, None, None, line, match.end() - 1)
        return True

    def _training_step(
        self, n: int, total: int, percent: str, lr: str | None, loss: str | None,
        epoch: re.Match[str] | None, line: str, at: int,
    ) -> None:
        """Record a training bar's step, total, percent, lr and loss; its timing is read lazily."""
        state = self.state
        whole_run = True
        if epoch is not None:
            n, total, whole_run = self._epoch_step(int(epoch.group(1)), n, total)
            if state.step is not None and n < state.step:
                n = state.step  # another GPU's bar, a refresh behind: the furthest counts
                whole_run = False
        self._timing = (line, at, whole_run)
        state.step, state.total_steps = n, total
        if total > 0:
            state.train_percent = min(100.0, n * 100.0 / total)
        elif percent.isdigit():
            state.train_percent = min(100.0, float(percent))
        if lr is not None and (value := _number(lr)) is not None:
            state.lr = value
            state.lrs.record(n, value)
        if loss is not None and (value := _number(loss)) is not None:
            state.loss = value
            state.losses.record(n, value)
        if state.stage.order < _TRAINING_ORDER:
            state.stage = Stage.TRAINING

    def _epoch_step(self, epoch: int, n: int, per_epoch: int) -> tuple[int, int, bool]:
        """Per-epoch bars (`Training Epoch1: …`) restart at 0: their step across the whole run.
        Every GPU prints its own, interleaved, and an epoch's last line may come after the next
        epoch's first: the epoch number in the description places each line."""
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._per_epoch = per_epoch
        index = max(0, epoch - self._first_epoch)
        step = index * per_epoch + n
        if self._configured is not None:
            total = self._configured
        elif self._epochs:
            total = per_epoch * self._epochs
        else:
            total = (index + 1) * per_epoch  # the number of epochs is not known
        last_epoch = self._epochs is not None and index + 1 >= self._epochs
        return step, max(total, step), last_epoch

    def _apply_timing(self) -> None:
        """Read elapsed/remaining/rate of the last training bar only (the others are outdated)."""
        timing, self._timing = self._timing, None
        if timing is None:
            return
        line, at, whole_run = timing
        state = self.state
        match = _TIMING.match(line, at)
        if match is None:
            state.bar_elapsed = state.bar_remaining = state.rate = None
            return
        state.bar_elapsed = _seconds(match.group(1))
        state.bar_remaining = _seconds(match.group(2)) if whole_run else None
        rate, unit = _number(match.group(3)), match.group(4)
        if rate is None or unit is None:
            state.rate = None
        elif unit.startswith("s/"):
            state.rate = 1.0 / rate if rate > 0 else None
        else:
            state.rate = rate

    # --- everything that is not a training bar ---------------------------------------------------
    def _message(self, line: str) -> None:
        state = self.state
        stage = state.stage
        if stage is Stage.QUEUED:
            stage = state.stage = Stage.BOOTING  # any output means the container runs
        if "is completed and loss is" in line:
            if match := _STEP_LINE.search(line):
                self._step_line(int(match.group(1)), _number(match.group(2)))
                return
        if line.startswith("Traceback (most recent call last)"):
            self._tb = [line]
            return
        if ("rror" in line or "ERROR" in line or "xception" in line or "FATAL" in line) and _ERROR_LINE.search(
            line[:_HEAD]
        ):
            self._error(line)
        if stage.order < _TRAINING_ORDER:
            self._before_training(line)
        if "av" in line or "INFO:__main__:" in line or line.startswith(_OUTPUT_LISTING):
            self._saving(line)
        if "Uploading to Hugging Face" in line:
            if self.state.stage is Stage.SAVING or self.training_done():
                self._advance(Stage.UPLOADING)
        elif "/" in line and ("tep" in line or "ter" in line or self._configured is not None or line[:1].isdigit()):
            self._counter(line)

    def _before_training(self, line: str) -> None:
        """Stage messages and facts (config, counts, job name) printed before training starts."""
        if "Download" in line or "[ Initiating ]" in line or "[ Complete ]" in line or line.startswith("downloading "):
            self._advance(Stage.DOWNLOADING)
        elif line.startswith('"') or line.startswith(' "') or line.startswith('  '):
            stripped = line.strip()
            if match := _CONFIG_STEPS.match(stripped):
                self._configure(int(match.group(1)))
            elif (match := _CONFIG_NAME.match(stripped)) and self._job is None:
                self._job = match.group(1)
            elif match := _CONFIG_SAMPLE_EVERY.match(stripped):
                self.state.sample_every = int(match.group(1)) or None
            elif "Extracted " in line or "Found " in line:
                self._count(line)
        elif "INFO:__main__:" in line:
            self._wrapper(line)
        elif "Extracted " in line or "Upscaling" in line or (
            "Generating " in line and ("caption" in line or "mask" in line)
        ):
            self._count(line)
            self._advance(Stage.PREPARING)
        elif "Caption for" in line:
            self._advance(Stage.CAPTIONING)
        elif "Distributed environment:" in line:
            # accelerate's state, the first thing a diffusers training script logs: the wrapper's
            # preparation is over, and the shards that follow are the model's, not a captioner's
            self._advance(Stage.LOADING)
        elif "Loading checkpoint shards" in line:
            # LLaVA loads shards to caption the images; LLM trainers load their model the same way.
            in_preparation = self.state.stage in (Stage.PREPARING, Stage.CAPTIONING)
            self._advance(Stage.CAPTIONING if in_preparation else Stage.LOADING)
        elif (
            "Starting train job" in line or "Loaded models" in line or "LOADING MODEL" in line
            or (line.startswith("Loading ") and line.endswith(" model"))
        ):
            self._advance(Stage.LOADING)
        elif line.startswith("# Running job:"):
            if match := _JOB.match(line):
                self._job = match.group(1)
            self._advance(Stage.LOADING)
        elif "Caching latents" in line:
            self._advance(Stage.CACHING)
        elif "Total optimization steps" in line:
            if match := _TOTAL_STEPS.search(line):
                self._configure(int(match.group(1)))
        elif "Training Set Length" in line:
            if match := _TRAIN_SET.search(line):
                self._train_set = int(match.group(1))
                self._llm_total()
        elif "'--" in line and "=" in line:
            for name, value in _ARG.findall(line):
                if name == "num_epochs":
                    self._epochs = int(value) or None
                elif name == "batch_size_training":
                    self._batch = int(value) or None
                else:
                    self._processes = int(value) or None
            self._llm_total()
        elif "poch" in line:
            if match := _EPOCHS.search(line):
                self._epochs = int(match.group(1)) or None
                self._llm_total()
        elif "Found " in line or "Num examples" in line or " files" in line:
            self._count(line)
        elif "it [" in line and line[:1].isdigit() and self.state.stage.order >= Stage.PREPARING.order:
            self._advance(Stage.PREPARING)  # a bar without a total (CLIPSeg's masks): preprocessing

    def _wrapper(self, line: str) -> None:
        """`logging` lines of a trainer's own wrapper (replicate/qwen-image-lora-trainer)."""
        if "Starting training with command" in line:
            # The older wrapper captures the trainer's output: nothing more until it has finished.
            self.state.opaque = True
            self._advance(Stage.LOADING)
        elif "Starting training: " in line:
            if (match := _WRAPPER_JOB.search(line)) and self._job is None:
                self._job = match.group(1)
        elif "Extracted " in line:
            self._count(line)
            self._advance(Stage.PREPARING)
        elif "Training: " in line:
            if match := _WRAPPER_STEPS.search(line):
                self._configure(int(match.group(1)))

    def training_done(self) -> bool:
        """The training bar has reached its last step (ai-toolkit's ends at `999/1000`)."""
        step, total = self.state.step, self.state.total_steps
        return step is not None and total is not None and total > 0 and step >= total - 1

    def _saving(self, line: str) -> None:
        """Finishing: certain messages at once, saves only once training is done (see the module)."""
        if line.startswith(_FINAL_MESSAGES) or line.startswith("Saving final model"):
            self._advance(Stage.SAVING)
            if self.state.opaque and self.state.train_percent is None:
                self.state.opaque = False
        elif line.startswith(_OUTPUT_LISTING):
            # `tar -cvf` (flux), `print(file_path)` of the archive (sdxl, llm): after training only
            if self.state.stage is Stage.TRAINING and " " not in line:
                self._advance(Stage.SAVING)
        elif any(save in line for save in _MAYBE_FINAL_SAVES):
            if self.state.stage is Stage.TRAINING and self.training_done():
                self._advance(Stage.SAVING)

    def _step_line(self, n: int, loss: float | None) -> None:
        """`step N is completed and loss is X` (LLaMA recipes, rank 0 only): N counts from 0 and
        restarts every epoch."""
        state = self.state
        if n <= self._last_step_line:  # a new epoch
            self._step_epoch += 1
            self._step_offset += self._last_step_line + 1
        self._last_step_line = n
        per_epoch = self._per_epoch or self._llm_per_epoch()
        done = n + 1
        step = (self._step_epoch * per_epoch if per_epoch else self._step_offset) + done
        if state.step is None or step > state.step:
            state.step = step
            if state.total_steps:
                state.train_percent = min(100.0, max(0.0, step * 100.0 / state.total_steps))
        if loss is not None:
            state.loss = loss
            state.losses.record(step, loss)
        self._advance(Stage.TRAINING)

    def _counter(self, line: str) -> None:
        """`step 150/1000`, or a bare `150/1000` whose total is the configured number of steps."""
        match = _STEP_COUNTER.search(line)
        if match is not None and not (
            int(match.group(2)) == self._configured or "loss" in line or self.state.stage is Stage.TRAINING
            or (self.state.stage.order <= Stage.BOOTING.order and not line[match.end() :].strip())
        ):
            match = None  # `Step 1/3: setting up` is not training
        if match is None and self._configured is not None:
            match = next(
                (m for m in _BARE_COUNTER.finditer(line) if int(m.group(2)) == self._configured), None
            )
        if match is None and self.state.stage.order <= Stage.BOOTING.order:
            match = _LONE_COUNTER.fullmatch(line)  # `150/1000` alone, with nothing known yet
        if match is None:
            return
        n, total = int(match.group(1)), int(match.group(2))
        if total <= 0 or n > total:
            return
        state = self.state
        state.step, state.total_steps = n, total
        state.train_percent = n * 100.0 / total
        tail = line[match.end() :]
        if "loss" in tail.lower() and (found := _LOSS.search(tail)) and (value := _number(found.group(1))) is not None:
            state.loss = value
            state.losses.record(n, value)
        if "lr" in tail and (found := _LR.search(tail)) and (value := _number(found.group(1))) is not None:
            state.lr = value
            state.lrs.record(n, value)
        self._advance(Stage.TRAINING)

    # --- errors ----------------------------------------------------------------------------------
    def _traceback_line(self, line: str) -> None:
        """Collect a traceback until its error line (Cog strips the indentation of frames)."""
        block = self._tb
        assert block is not None
        if len(block) > 1 and _EXCEPTION.match(line[:_HEAD].strip()):  # frames first, then the error
            block.append(line)
            self.state.traceback = "\n".join(block)
            self._tb = None
            self._error(line)
            return
        if len(block) < MAX_TRACEBACK_LINES:
            block.append(line)

    def _error(self, line: str) -> None:
        errors = self.state.error_lines
        if errors and errors[-1] == line:
            return
        errors.append(line)
        if len(errors) > MAX_ERROR_LINES:
            del errors[0]

    # --- facts -----------------------------------------------------------------------------------
    def _advance(self, stage: Stage) -> None:
        """Stages only move forward."""
        if stage.order > self.state.stage.order:
            self.state.stage = stage

    def _configure(self, steps: int) -> None:
        if steps <= 0:
            return
        self._configured = steps
        if self.state.step is None:
            self.state.total_steps = steps

    def _llm_per_epoch(self) -> int | None:
        """Steps per epoch from the printed set length, batch size and number of processes: each
        process takes ceil(length / processes) examples (DistributedSampler), and the loader drops
        the last incomplete batch (cog-llama-template llama_finetuning.py)."""
        if not self._train_set:
            return None
        processes = self._processes or 1
        return max(1, -(-self._train_set // processes) // (self._batch or 1))

    def _llm_total(self) -> None:
        """LLaMA recipes print the training set length and arguments, not the number of steps."""
        per_epoch = self._llm_per_epoch()
        if per_epoch and self.state.step is None and self._configured is None:
            self.state.total_steps = per_epoch * (self._epochs or 1)

    def _count(self, line: str) -> None:
        if match := _COUNTS.search(line):
            self._image_counts.add(int(match.group(1) or match.group(2)))
