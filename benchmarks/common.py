"""Shared helpers for benchmark scripts: machine description and bootstrap intervals."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from importlib import metadata

import numpy as np

from calibration.bootstrap import percentile_interval


def machine_description() -> str:
    """CPU model, cores, memory, OS and Python, for the header of a results file."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(next(line.split()[1] for line in handle if line.startswith("MemTotal")))
            memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores{memory}; {system}; Python {platform.python_version()}"


def package_versions(names: Sequence[str]) -> str:
    """``name version`` pairs of the installed packages that matter to a result."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], data: np.ndarray, *, n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of ``statistic`` over the rows of ``data``; NaN resamples are dropped."""
    return percentile_interval(lambda rows: statistic(data[rows]), len(data), n_resamples=n_resamples, seed=seed)


def describe_target(answer_level: float, hedge_level: float, confidence_level: float, method: str = "ltt") -> str:
    """A threshold target in words: the error rates it allows (1 - the wanted accuracy) and how it is held.

    ``answer_level`` and ``hedge_level`` are wanted *accuracies* (``gate calibrate --answer-level``), so a
    level of 0.55 allows an error rate of 0.45 among the answered requests.
    """
    levels = f"error among answered <= {1 - answer_level:.2f}, among answered or hedged <= {1 - hedge_level:.2f}"
    how = {
        "ltt": f"each with probability >= {confidence_level:.0%} (Learn-then-Test)",
        "crc": "in expectation (conformal risk control)",
        "balance": "no guarantee (balance objective)",
    }
    return f"{levels}, {how.get(method, method)}"
