"""Interleaved timing: each side runs in turn (A, B, A, B ...) after a warm-up; medians and their ratio."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Samples:
    """Seconds measured for one side, one value per timed round."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        """The figure we report: the median round."""
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        """The fastest round."""
        return min(self.seconds)

    @property
    def high(self) -> float:
        """The slowest round."""
        return max(self.seconds)

    def spread(self) -> str:
        """`min-max` of the rounds, for the tables' noise column."""
        return f"{self.low * 1e3:.1f}-{self.high * 1e3:.1f} ms"


def interleave(sides: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1,
               pause_s: float = 0.0) -> dict[str, Samples]:
    """Run every side once per round, in the order given, for `warmup` untimed then `repeats` timed rounds.

    Each side measures itself and returns seconds (one call, a subprocess, or a per-call mean over a loop),
    so alternating rounds expose both sides to the same background load. `pause_s` of idle time before each
    side lets the other side's worker threads stop spinning (ONNX Runtime's and OpenMP's both busy-wait).
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be positive and warmup non-negative")
    measured: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(warmup + repeats):
        for name, side in sides.items():
            if pause_s > 0:
                time.sleep(pause_s)
            seconds = side()
            if round_ >= warmup:
                measured[name].append(seconds)
    return {name: Samples(tuple(values)) for name, values in measured.items()}


def ratio(slow: Samples, fast: Samples) -> float:
    """How many times faster `fast` is: median(slow) / median(fast)."""
    return slow.median / fast.median if fast.median > 0 else math.inf


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean seconds per call over `calls` back-to-back calls (one timed round of a fast side)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], budget_s: float, most: int = 10_000) -> int:
    """How many back-to-back calls fill about `budget_s` seconds, judged by the fastest of a few trial calls.

    The fastest, not the first: a first call pays one-off costs, and on a busy machine any call may stall.
    """
    trials: list[float] = []
    while len(trials) < 5 and sum(trials) < budget_s / 2:
        start = time.perf_counter()
        fn()
        trials.append(time.perf_counter() - start)
    once = min(trials)
    return max(1, min(most, round(budget_s / once) if once > 0 else most))


def looped(fn: Callable[[], object], budget_s: float) -> Callable[[], float]:
    """A side for `interleave`: about `budget_s` seconds of back-to-back calls of `fn`, returning seconds per call."""
    calls = calls_for(fn, budget_s)
    return lambda: per_call(fn, calls)


def cpu_looped(fn: Callable[[], object], budget_s: float) -> Callable[[], float]:
    """Like `looped`, but each round returns this process's CPU seconds per call (all its threads), not wall time:
    with one compute thread that is the work itself, whatever else keeps the machine's cores busy."""
    calls = calls_for(fn, budget_s)

    def side() -> float:
        start = time.process_time()
        for _ in range(calls):
            fn()
        return (time.process_time() - start) / calls

    return side


def wall(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
