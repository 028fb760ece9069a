"""What a trainer's log says: stage, step/total, timing from its progress bar, loss and lr, errors.

Replicate returns the WHOLE log on every poll and every `logs` webhook. `LogParser.feed` takes that
cumulative text again and again and only reads the part it has not seen, so following a training
costs about one pass over its log however often it is polled. Lines end at `\\r`, `\\n` or `\\r\\n`;
a line is only read once its terminator has arrived (`finish()` reads the last one at the end).

The parser knows the trainers described in the reference notes (flux LoRA via ai-toolkit, the SDXL
trainer, the LLaMA fine-tunes) and falls back on generic tqdm bars and `step N/M` counters.
Only bars that belong to training count as progress: the trainer's named job bar, a bar seen once
training has begun, or a bar whose total equals the configured number of steps. The short bars of
preprocessing (`100%|██████████| 10/10` over the images, `Caching latents: …`, `Loading checkpoint
shards: …`) never do.
"""

from __future__ import annotations

import bisect
import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice, repeat
from math import isfinite
from operator import lt


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
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss), one per step
    lrs: list[tuple[int, float]] = field(default_factory=list)  # (step, lr), one per step
    error_lines: list[str] = field(default_factory=list)  # the most recent MAX_ERROR_LINES
    traceback: str | None = None  # the last traceback, through its error line
    lines: int = 0  # complete lines processed
    consumed: int = 0  # characters of the cumulative log consumed

    def copy(self) -> LogState:
        return copy.deepcopy(self)


MAX_ERROR_LINES = 20
MAX_TRACEBACK_LINES = 400  # a recursion error can print thousands; the head and error line suffice

# --- patterns, compiled once ---------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)"
# After a bar's cells: ` 310/1000`, then the timing ` [02:10<04:50,  2.38it/s` (read lazily).
_COUNTER = re.compile(r"\s*(\d+)/(\d+)")
_TIMING = re.compile(
    r"\s*\[([\d:]+)(?:<([\d:]+|\?))?(?:,\s*(?:(\d+(?:\.\d+)?)\s*(s/it|it/s|s/\w+|\w+/s)|\?\s*\S*))?"
)
# The postfix of the flux trainer's bar, at the end of the line: `, lr: 4.0e-04 loss: 2.472e-01]`.
_FLUX_POSTFIX_TEXT = r", lr: (\S+) loss: ([^\s\]]+)\]"
_FLUX_POSTFIX = re.compile(_FLUX_POSTFIX_TEXT + "$")
_BAR_LR = re.compile(r"\blr[=:]\s*(" + _NUM + r")")
_BAR_LOSS = re.compile(r"\bloss[=:]\s*(" + _NUM + r")")
_LOSS = re.compile(r"\bloss[=:]?\s*(" + _NUM + r")", re.IGNORECASE)
_LR = re.compile(r"\blr[=:]\s*(" + _NUM + r")", re.IGNORECASE)
_STEP_LINE = re.compile(r"\bstep (\d+) is completed and loss is (" + _NUM + ")")
_STEP_COUNTER = re.compile(r"(?i:\b(?:global[ _])?(?:step|iter(?:ation)?)s?)\s*[:=#]?\s*\[?\s*(\d+)\s*(?:/|of)\s*(\d+)")
_BARE_COUNTER = re.compile(r"(?<![\w./:-])(\d+)/(\d+)(?![\w./:-])")
_CONFIG_STEPS = re.compile(r'^"(?:steps|max_train_steps|max_steps|num_train_steps)":\s*(\d+),?$')
_CONFIG_NAME = re.compile(r'^"name":\s*"([^"]+)",?$')
_TOTAL_STEPS = re.compile(r"Total optimization steps\s*=\s*(\d+)")
_TRAIN_SET = re.compile(r"Training Set Length\s*=\s*(\d+)")
_EPOCHS = re.compile(r"(?i:num[_ ]?(?:train[_ ])?epochs)\W{1,4}(\d+)")
_COUNTS = re.compile(
    r"(?:Extracted|Generating|Upscaling|Found|Num examples =)\s*(\d+)\s*(?:files|captions|masks|images|$)"
    r"|^(?:\d+x\d+):\s*(\d+) files"
)
_JOB = re.compile(r"^# Running job:\s*(\S+)")
_FINAL_SAVE = re.compile(r"Saved to (\S+?)(_\d+)?\.(?:safetensors|pt|bin|ckpt)\b")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?::\s?.*)?$")
_ERROR_LINE = re.compile(
    r"^(?:(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception)(?::.*)?$|(?:ERROR|FATAL|Error|error)\b)"
    r"|\|\s*ERROR\s*\|"
    r"|CUDA out of memory"
)
_EPOCH_IN_DESC = re.compile(r"(?i)epoch")
_TRAINING_ORDER = _ORDER[Stage.TRAINING]  # a constant for the hot path
_HEAD = 500  # error patterns look at the start of a line only: a log line can be megabytes long

# Bar descriptions that name preprocessing, never training.
_PREPROCESSING_DESCS = (
    "cach", "checkpoint shard", "generat", "upscal", "caption", "mask", "download", "fetch",
    "extract", "preprocess", "bucket", "loading", "map", "token", "sampl", "resiz", "convert",
)
_TRAINING_DESCS = ("train", "epoch", "step", "optimi", "fine-tun", "finetun")


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


def _postfix(line: str, pos: int) -> tuple[str | None, str | None]:
    """`lr` and `loss` from a bar's postfix (`lr: 1e-4`, `loss=0.3`), after position `pos`."""
    lr = loss = None
    if "lr" in line and (found := _BAR_LR.search(line, pos)):
        lr = found.group(1)
    if "loss" in line and (found := _BAR_LOSS.search(line, pos)):
        loss = found.group(1)
    return lr, loss


class _MainBar:
    """Patterns for the trainer's main bar, once its description (`flux_train_replicate:`) is known."""

    def __init__(self, prefix: str) -> None:
        escaped = re.escape(prefix)
        self.prefix = prefix
        # percent, step, total — matched at the start of a line (possessive: nothing to backtrack)
        self.counter = re.compile(escaped + r" *+(\d++)%\|[^|\n]*+\| *+(\d++)/(\d++)")
        # the same, for the bulk path: anchored on the newline before the line, step only
        self.step_at_start = re.compile(r"\n" + escaped + r" *+\d++%\|[^|\n]*+\| *+(\d++)/\d")
        # lr and loss, anchored on the newline after the line
        self.lr_loss_at_end = re.compile(_FLUX_POSTFIX_TEXT + r"\n")
        # the newline before a line that is NOT the main bar's
        self.other_line = re.compile(r"\n(?!" + escaped + ")")
        self._loss_after: dict[str, re.Pattern[str]] = {}

    def loss_after(self, lr_text: str) -> re.Pattern[str]:
        """`lr_loss_at_end` with a given lr: one group, and a literal to search for (faster)."""
        pattern = self._loss_after.get(lr_text)
        if pattern is None:
            if len(self._loss_after) > 16:  # a decaying lr: do not keep one pattern per value
                self._loss_after.clear()
            literal = re.escape(f", lr: {lr_text} loss: ")
            pattern = self._loss_after[lr_text] = re.compile(literal + r"([^\s\]]+)\]\n")
        return pattern


def _extend(series: list[tuple[int, float]], steps: list[int], values: Iterable[float], increasing: bool) -> None:
    """`_record` for many points; strictly increasing steps past the series' end are appended as is."""
    if increasing and steps and (not series or series[-1][0] < steps[0]):
        series.extend(zip(steps, values))
    else:
        for step, value in zip(steps, values):
            _record(series, step, value)


def _record(series: list[tuple[int, float]], step: int, value: float) -> None:
    """One point per step, kept sorted by step; a repeated step keeps its latest value."""
    if not series or series[-1][0] < step:
        series.append((step, value))
    elif series[-1][0] == step:
        series[-1] = (step, value)
    else:
        at = bisect.bisect_left(series, (step, float("-inf")))
        if at < len(series) and series[at][0] == step:
            series[at] = (step, value)
        else:
            series.insert(at, (step, value))


class LogParser:
    """Incremental parser of one training's cumulative log."""

    def __init__(self, configured_steps: int | None = None) -> None:
        """`configured_steps`: the steps the training was asked for (its input), when known."""
        self.state = LogState()
        self._configured = configured_steps if configured_steps and configured_steps > 0 else None
        self.state.total_steps = self._configured
        self._job: str | None = None  # the trainer's job name: its main bar carries it
        self._main_desc: str | None = None  # description of the bar accepted as training
        self._main: _MainBar | None = None  # set when that bar is named: enables the bulk path
        self._image_counts: set[int] = set()
        self._epochs: int | None = None
        self._train_set: int | None = None
        self._epoch_desc: str | None = None  # per-epoch bars restart at 0: keep a running offset
        self._epoch_offset = 0
        self._epoch_total = 0
        self._step_offset = 0  # `step N is completed` restarts every epoch too
        self._last_step_line = -1
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
        count = text.count("\n", start, end)
        if count < 4 or not self._bulk(main, text, start, end, count):
            pos = start
            while pos < end:
                stop = text.index("\n", pos)
                self._line(text[pos:stop])
                pos = stop + 1
        self.state.lines += count

    def _bulk(self, main: _MainBar, text: str, start: int, end: int, count: int) -> bool:
        steps = main.step_at_start.findall(text, start - 1, end)
        if len(steps) != count:
            return False
        lr_value = 0.0  # the one lr of every line, read when `lrs` stays None
        lrs: list[float] | None = None
        # The learning rate rarely changes: try "this lr, then a loss" before the general pattern.
        same_lr = main.loss_after(self._lr_text) if self._lr_text else None
        losses_text: Sequence[str] = same_lr.findall(text, start, end) if same_lr else []
        try:
            if self._lr_text is not None and len(losses_text) == count:
                lr_value = float(self._lr_text)
            else:
                pairs = main.lr_loss_at_end.findall(text, start, end)
                if len(pairs) != count:
                    return False
                lr_texts, losses_text = zip(*pairs)
                lrs = list(map(float, lr_texts))
                if not all(map(isfinite, lrs)):
                    return False
            losses = list(map(float, losses_text))
        except ValueError:
            return False  # an unreadable number: `_line` leaves that point out
        if not all(map(isfinite, losses)):
            return False
        numbers = list(map(int, steps))
        increasing = all(map(lt, numbers, islice(numbers, 1, None)))
        state = self.state
        _extend(state.losses, numbers, losses, increasing)
        _extend(state.lrs, numbers, lrs if lrs is not None else repeat(lr_value, count), increasing)
        # The last line again, one by one: it sets step, total, percent, lr, loss, timing, stage.
        last = text.rindex("\n", start - 1, end - 1) + 1
        self._line(text[last : end - 1])
        return True

    # --- one line --------------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        main = self._main
        if main is not None and line.startswith(main.prefix) and self._main_bar(line, main):
            return
        if self._tb is not None:
            self._traceback_line(line)
        if "%|" in line and self._bar(line):
            return
        self._message(line)

    def _main_bar(self, line: str, main: _MainBar) -> bool:
        """A line of the trainer's main bar, recognised by its description."""
        match = main.counter.match(line)
        if match is None:
            return False
        n, total = int(match.group(2)), int(match.group(3))
        lr = loss = None
        if found := _FLUX_POSTFIX.search(line, match.end()):
            lr, loss = found.group(1), found.group(2)
            if _number(lr) is not None:
                self._lr_text = lr  # for the bulk path's guess
        else:
            lr, loss = _postfix(line, match.end())
        self._training_step(n, total, match.group(1), lr, loss, self._main_desc or "", line, match.end())
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
        n, total = int(match.group(1)), int(match.group(2))
        if not self._is_training_bar(desc, total):
            return False
        if self._main_desc is None:
            self._main_desc = desc
            # A named bar that starts its lines (as in Cog's stripped logs) gets the bulk path.
            if desc and line.startswith(desc + ":") and not _EPOCH_IN_DESC.search(desc):
                self._main = _MainBar(desc + ":")
                if self._main_bar(line, self._main):
                    return True
        lr, loss = _postfix(line, match.end())
        self._training_step(n, total, head[len(digits) :], lr, loss, desc, line, match.end())
        return True

    def _is_training_bar(self, desc: str, total: int) -> bool:
        if self._main_desc is not None:
            if desc == self._main_desc:
                return True
            if _EPOCH_IN_DESC.search(desc) and _EPOCH_IN_DESC.search(self._main_desc):
                return True  # the next epoch's bar
            return total == self.state.total_steps and not self._is_preprocessing(desc)
        if self._is_preprocessing(desc):
            return False
        lowered = desc.lower()
        if desc and ((self._job and desc.endswith(self._job)) or any(w in lowered for w in _TRAINING_DESCS)):
            return True
        training = self.state.stage is Stage.TRAINING
        if total in self._image_counts and not training:
            return False  # a pass over the images before training: preprocessing
        if self._configured is not None and total == self._configured:
            return True
        return training

    @staticmethod
    def _is_preprocessing(desc: str) -> bool:
        lowered = desc.lower()
        return any(word in lowered for word in _PREPROCESSING_DESCS)

    def _training_step(
        self, n: int, total: int, percent: str, lr: str | None, loss: str | None, desc: str, line: str, at: int
    ) -> None:
        """Record a training bar's step, total, percent, lr and loss; its timing is read lazily."""
        state = self.state
        whole_run = True
        if self._epoch_desc is not None or (desc and _EPOCH_IN_DESC.search(desc)):
            per_epoch = total
            n, total = self._epoch_step(desc, n, total)
            whole_run = total == self._epoch_offset + per_epoch  # only the last epoch's bar
        self._timing = (line, at, whole_run)
        state.step, state.total_steps = n, total
        if total > 0:
            state.train_percent = min(100.0, n * 100.0 / total)
        elif percent.isdigit():
            state.train_percent = min(100.0, float(percent))
        if lr is not None and (value := _number(lr)) is not None:
            state.lr = value
            _record(state.lrs, n, value)
        if loss is not None and (value := _number(loss)) is not None:
            state.loss = value
            _record(state.losses, n, value)
        if state.stage.order < _TRAINING_ORDER:
            state.stage = Stage.TRAINING

    def _epoch_step(self, desc: str, n: int, per_epoch: int) -> tuple[int, int]:
        """Per-epoch bars (`Training Epoch1: …`) restart at 0: turn them into a running step."""
        if self._epoch_desc is not None and desc != self._epoch_desc:
            self._epoch_offset += self._epoch_total
        self._epoch_desc, self._epoch_total = desc, per_epoch
        self._step_offset = self._epoch_offset
        if self._configured is not None:
            total = self._configured
        elif self._epochs:
            total = per_epoch * self._epochs
        else:
            total = self._epoch_offset + per_epoch  # the number of epochs is not known
        return self._epoch_offset + n, max(total, self._epoch_offset + per_epoch)

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
                self._step_line(int(match.group(1)), match.group(2))
                return
        if line.startswith("Traceback (most recent call last)"):
            self._tb = [line]
            return
        if ("rror" in line or "ERROR" in line or "xception" in line or "FATAL" in line) and _ERROR_LINE.search(
            line[:_HEAD]
        ):
            self._error(line)
        order = stage.order
        if order < _ORDER[Stage.TRAINING]:
            self._before_training(line)
        if "Sav" in line or "save" in line or "tar " in line or line.startswith("output/"):
            self._saving(line)
        elif "Uploading to Hugging Face" in line:
            self._advance(Stage.UPLOADING)
        elif "/" in line and ("tep" in line or "ter" in line or self._configured is not None):
            self._counter(line)

    def _before_training(self, line: str) -> None:
        """Stage messages and facts (config, counts, job name) printed before training starts."""
        if "Download" in line or "[ Initiating ]" in line or "[ Complete ]" in line:
            self._advance(Stage.DOWNLOADING)
        elif line.startswith('"'):
            if match := _CONFIG_STEPS.match(line):
                self._configure(int(match.group(1)))
            elif (match := _CONFIG_NAME.match(line)) and self._job is None:
                self._job = match.group(1)
        elif "Extracted " in line or "Upscaling" in line or (
            "Generating " in line and ("caption" in line or "mask" in line)
        ):
            self._count(line)
            self._advance(Stage.PREPARING)
        elif "Caption for" in line:
            self._advance(Stage.CAPTIONING)
        elif "Loading checkpoint shards" in line:
            # LLaVA loads shards to caption the images; LLM trainers load their model the same way.
            in_preparation = self.state.stage in (Stage.PREPARING, Stage.CAPTIONING)
            self._advance(Stage.CAPTIONING if in_preparation else Stage.LOADING)
        elif "Starting train job" in line or "Loading Flux model" in line or "Loaded models" in line:
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
        elif "poch" in line:
            if match := _EPOCHS.search(line):
                self._epochs = int(match.group(1)) or None
                self._llm_total()
        elif "Found " in line or "Num examples" in line or " files" in line:
            self._count(line)

    def _saving(self, line: str) -> None:
        """Final save messages and the tar listing → saving; per-step checkpoints stay training."""
        if "Saved to " in line:
            match = _FINAL_SAVE.search(line)
            if match and match.group(2) is None:
                self._advance(Stage.SAVING)
        elif (
            "Saving final model" in line
            or "about to save the PEFT modules" in line
            or "PEFT modules are saved" in line
            or line.startswith("tar -")
            or (line.startswith("output/") and " " not in line and self.state.stage is Stage.TRAINING)
        ):
            self._advance(Stage.SAVING)

    def _step_line(self, n: int, loss_text: str) -> None:
        """`step N is completed and loss is X` (LLaMA recipes); N restarts each epoch."""
        state = self.state
        if n < self._last_step_line:  # a new epoch
            if self._epoch_desc is None:
                self._step_offset += self._last_step_line + 1
            else:  # its bar will say so too; meanwhile continue after the last epoch
                self._step_offset = self._epoch_offset + self._epoch_total
        self._last_step_line = n
        step = self._step_offset + n
        state.step = step
        if state.total_steps:
            state.train_percent = min(100.0, max(0.0, step * 100.0 / state.total_steps))
        if (value := _number(loss_text)) is not None:
            state.loss = value
            _record(state.losses, step, value)
        self._advance(Stage.TRAINING)

    def _counter(self, line: str) -> None:
        """`step 150/1000`, or a bare `150/1000` whose total is the configured number of steps."""
        match = _STEP_COUNTER.search(line)
        if match is not None and not (
            int(match.group(2)) == self._configured or "loss" in line or self.state.stage is Stage.TRAINING
        ):
            match = None  # `Step 1/3: setting up` is not training
        if match is None and self._configured is not None:
            match = next(
                (m for m in _BARE_COUNTER.finditer(line) if int(m.group(2)) == self._configured), None
            )
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
            _record(state.losses, n, value)
        if "lr" in tail and (found := _LR.search(tail)) and (value := _number(found.group(1))) is not None:
            state.lr = value
            _record(state.lrs, n, value)
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

    def _llm_total(self) -> None:
        """LLaMA recipes print the training set length and epochs, not the number of steps."""
        if self._train_set and self.state.step is None:
            self.state.total_steps = self._train_set * (self._epochs or 1)

    def _count(self, line: str) -> None:
        if match := _COUNTS.search(line):
            self._image_counts.add(int(match.group(1) or match.group(2)))
