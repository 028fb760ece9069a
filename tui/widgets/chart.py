"""A line chart drawn with braille dots: loss (raw and smoothed) on the left axis, lr on the right.

Each character cell holds 2×4 dots, so a 70×12 plot has 140×48 points of resolution. Between
consecutive points the line is filled in, and a column with many steps shows their full range, so
a noisy loss reads as a band with its smoothed trend drawn over it, the way W&B draws it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.format import colour, number

# Dot bits inside a braille cell, indexed [row][column].
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    style: str
    axis: str = "left"  # or "right"


MAX_POINTS = 1_500
REDRAW_EVERY = 0.25  # seconds


def stride(points: Sequence[Point], limit: int) -> Sequence[Point]:
    """At most about `limit` evenly spaced points, always keeping the last one (for the trend)."""
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)
    kept = list(points[::step])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept


def thin(points: Sequence[Point], limit: int, cache: MinMax | None = None) -> Sequence[Point]:
    """At most about `limit` points: of each run of consecutive points, its lowest and its highest
    (in step order), so a spike of one step in a million still shows in its column. With a
    `cache` (one per series), runs already summed up are not read again: a redraw costs the
    points added since the last one."""
    count = len(points)
    if count <= limit:
        return points
    xs: Sequence[float]
    ys: Sequence[float]
    if hasattr(points, "steps") and hasattr(points, "values"):
        xs, ys = points.steps, points.values
    else:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
    cache = cache if cache is not None else MinMax()
    kept: list[Point] = []
    for low, high in cache.extremes(ys, count, max(1, limit // 2)):
        for at in (low, high) if low < high else (high, low) if high < low else (low,):
            kept.append((xs[at], ys[at]))
    if kept[-1] != (xs[-1], ys[-1]):
        kept.append((xs[-1], ys[-1]))
    return kept


class MinMax:
    """Where the lowest and highest values of each run of `size` points are, for a series that
    only grows. Sizes are powers of two, so when a longer series needs longer runs, neighbouring
    runs merge instead of being read again."""

    def __init__(self) -> None:
        self.size = 1
        self.runs: list[tuple[int, int]] = []  # complete runs only

    def extremes(self, ys: Sequence[float], count: int, buckets: int) -> list[tuple[int, int]]:
        if len(self.runs) * self.size > count:  # not the series it was made for: start again
            self.size, self.runs = 1, []
        while -(-count // self.size) > buckets:
            self.size *= 2
            runs = self.runs
            merged = [self._pick(ys, runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
            self.runs = merged  # an odd last run is read again below
        size = self.size
        for start in range(len(self.runs) * size, count - size + 1, size):
            self.runs.append(self._read(ys, start, start + size))
        done = len(self.runs) * size
        tail = [self._read(ys, done, count)] if done < count else []
        return self.runs + tail

    @staticmethod
    def _read(ys: Sequence[float], start: int, end: int) -> tuple[int, int]:
        chunk = ys[start:end]
        return start + chunk.index(min(chunk)), start + chunk.index(max(chunk))

    @staticmethod
    def _pick(ys: Sequence[float], a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
        return (a[0] if ys[a[0]] <= ys[b[0]] else b[0]), (a[1] if ys[a[1]] >= ys[b[1]] else b[1])


def smooth(points: Sequence[Point], weight: float = 0.9) -> list[Point]:
    """W&B-style exponential moving average, debiased so the start is not pulled towards 0."""
    out: list[Point] = []
    average = 0.0
    for index, (x, y) in enumerate(points, start=1):
        average = weight * average + (1 - weight) * y
        out.append((x, average / (1 - weight**index)))
    return out


def _finite(points: Sequence[Point]) -> list[Point]:
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high - low < 1e-12:
        pad = abs(high) * 0.1 or 1.0
        return (max(0.0, low - pad) if low >= 0 else low - pad), high + pad
    pad = (high - low) * 0.05
    # A quantity that is never negative (loss, lr) keeps its axis at or above zero.
    return (max(0.0, low - pad) if low >= 0 else low - pad), high + pad


class Canvas:
    """A grid of braille cells; each dot remembers the highest-priority series that set it."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.owner: list[list[int]] = [[-1] * width for _ in range(height)]

    def dot(self, x: int, y: int, layer: int) -> None:
        if 0 <= x < self.width * 2 and 0 <= y < self.height * 4:
            row, col = y // 4, x // 2
            self.bits[row][col] |= _DOTS[y % 4][x % 2]
            self.owner[row][col] = max(self.owner[row][col], layer)

    def line(self, x0: int, y0: int, x1: int, y1: int, layer: int) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), layer)


def _columns(points: Sequence[Point], x_low: float, x_high: float, low: float, high: float,
             width: int, height: int) -> dict[int, tuple[int, int]]:
    """For each dot column, the span of dot rows the line covers there: every point that falls
    in the column, joined to the previous column's last point, so the line is continuous and a
    noisy stretch shows its full range. Cost: one pass over the points, one span per column."""
    spans: dict[int, tuple[int, int]] = {}
    previous: int | None = None
    x_scale = (width - 1) / (x_high - x_low)
    y_scale = (height - 1) / (high - low)
    for x, y in points:
        column = round((x - x_low) * x_scale)
        row = min(height - 1, max(0, round((high - y) * y_scale)))
        span = spans.get(column)
        if span is None:
            start = row if previous is None else previous
            span = (min(start, row), max(start, row))
        else:
            span = (min(span[0], row), max(span[1], row))
        spans[column] = span
        previous = row
    return spans


WAITING = "no loss reported yet: the curve appears once training steps are logged"


def plot(series: Sequence[Series], width: int, height: int, *, x_label: str = "step",
         empty: str = WAITING) -> Text:
    """The whole chart (axes, labels, legend) as `height` lines of `width` cells."""
    # Drop NaN/inf once; every later pass works on these lists.
    drawn = [Series(s.name, points, s.style, s.axis) for s in series if (points := _finite(s.points))]
    if width < 20 or height < 5:
        return Text("(too small for a chart)", style="dim")
    if not drawn:
        return Text(empty, style="dim", justify="center")
    left = [y for s in drawn if s.axis == "left" for _, y in s.points]
    right = [y for s in drawn if s.axis == "right" for _, y in s.points]
    x_low = min(s.points[0][0] for s in drawn)  # series come sorted by step
    x_high = max(s.points[-1][0] for s in drawn)
    if x_high - x_low < 1e-12:
        x_high = x_low + 1
    # The right axis (lr) starts at zero: a constant lr then reads as a flat line near the top.
    ranges = {"left": _range(left) if left else (0.0, 1.0),
              "right": (0.0, max(right) * 1.1 or 1.0) if right else (0.0, 1.0)}
    left_w = max(len(number(v)) for v in ranges["left"]) + 1
    right_w = (max(len(number(v)) for v in ranges["right"]) + 1) if right else 0
    plot_w, plot_h = width - left_w - right_w - 1, height - 3  # axis row, x labels, legend
    if plot_w < 8 or plot_h < 2:
        return Text("(too small for a chart)", style="dim")
    canvas = Canvas(plot_w, plot_h)
    for layer, s in enumerate(drawn):
        low, high = ranges[s.axis]
        for column, (top, bottom) in _columns(s.points, x_low, x_high, low, high,
                                              plot_w * 2, plot_h * 4).items():
            for y in range(top, bottom + 1):
                canvas.dot(column, y, layer)

    text = Text(no_wrap=True, overflow="crop")
    ticks = {0: 0.0, plot_h - 1: 1.0, (plot_h - 1) // 2: 0.5}
    for row in range(plot_h):
        fraction = ticks.get(row)
        label = "" if fraction is None else number(ranges["left"][1] - fraction * (ranges["left"][1] - ranges["left"][0]))
        text.append(label.rjust(left_w - 1) + " ", style="dim")
        text.append("┤" if fraction is not None else "│", style="dim")
        # One append per run of cells in the same style: a span per cell made a redraw cost tens of ms.
        bits_row, owner_row = canvas.bits[row], canvas.owner[row]
        run, run_style = [], ""
        for col in range(plot_w):
            bits = bits_row[col]
            style = drawn[owner_row[col]].style if bits else ""
            if style != run_style and run:
                text.append("".join(run), style=run_style)
                run = []
            run_style = style
            run.append(chr(0x2800 + bits) if bits else " ")
        if run:
            text.append("".join(run), style=run_style)
        if right:
            r_label = "" if fraction is None else number(ranges["right"][1] - fraction * (ranges["right"][1] - ranges["right"][0]))
            text.append(" " + r_label.ljust(right_w - 1), style="dim")
        text.append("\n")
    text.append(" " * left_w + "└" + "─" * plot_w + "\n", style="dim")
    low_label, high_label = f"{x_low:,.0f}", f"{x_high:,.0f}"
    middle = f"{x_label} {(x_low + x_high) / 2:,.0f}"
    gap = max(1, plot_w - len(low_label) - len(high_label) - len(middle))
    text.append(" " * (left_w + 1) + low_label + " " * (gap // 2) + middle + " " * (gap - gap // 2) + high_label + "\n",
                style="dim")
    legend = Text(" " * (left_w + 1))
    for s in drawn:
        legend.append("━━ ", style=s.style)
        legend.append(f"{s.name}{' (right axis)' if s.axis == 'right' else ''}  ", style="dim")
    text.append_text(legend)
    return text


class LossChart(Widget):
    """Loss (raw band and smoothed line) and learning rate over the training steps."""

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 8; }
    """
    revision: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.losses: Sequence[tuple[int, float]] = ()
        self.lrs: Sequence[tuple[int, float]] = ()
        self._seen = (0, 0)
        self._minmax = (MinMax(), MinMax())  # per-run extremes of the loss and lr series
        self._last: tuple[int, float] | None = None
        self._drawn_at = float("-inf")
        self.empty_message = WAITING  # what to say while there is nothing to draw
        self._pending = False

    def set_data(self, losses: Sequence[tuple[int, float]], lrs: Sequence[tuple[int, float]]) -> None:
        """Point at the parser's series (never copied: they only grow); redraw if they grew."""
        last = losses[-1] if losses else None
        if (len(losses), len(lrs)) != self._seen or last != self._last:
            if losses is not self.losses:  # another training's series
                self._minmax = (MinMax(), MinMax())
            self.losses, self.lrs = losses, lrs
            self._seen, self._last = (len(losses), len(lrs)), last
            # Redraw at most REDRAW_EVERY seconds apart: a curve needs no 50 redraws a second.
            wait = self._drawn_at + REDRAW_EVERY - time.monotonic()
            if wait <= 0 or not self.is_attached:
                self._redraw()
            elif not self._pending:
                self._pending = True
                self.set_timer(wait, self._redraw)

    def _redraw(self) -> None:
        self._pending = False
        self._drawn_at = time.monotonic()
        self.revision += 1

    def render(self) -> Text:
        # A plot is at most a few hundred dots wide: thin long runs (a million steps) before
        # drawing, with a C-speed slice, so a redraw costs about the same at step 100 and 10⁶.
        limit = min(MAX_POINTS, max(200, self.size.width * 4))  # ≥ 2 points per dot column
        losses, lrs = thin(self.losses, limit, self._minmax[0]), thin(self.lrs, limit, self._minmax[1])
        series = [Series("loss", losses, colour("foreground-darken-3"))]
        if len(losses) > 2:  # the trend from evenly spaced points: extremes would pull it about
            series.append(Series("smoothed", smooth(stride(self.losses, limit)), f"bold {colour('primary')}"))
        if lrs:
            series.append(Series("lr", lrs, colour("warning"), axis="right"))
        return plot(series, self.size.width, self.size.height, empty=self.empty_message)
