"""Which trials a sweep runs: every combination of the varied values (a grid), or a seeded
random sample of them. A grid is never built whole: combination i is decoded from its index,
so a sample from a huge grid costs only the sample."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

from botctl.errors import UsageError
from botctl.research.params import Value, parse_value

MAX_TRIALS_WITHOUT_YES = 10_000_000

Params = dict[str, Value]


class Grid:
    """The axes of a sweep: (path, values) pairs in the order given."""

    def __init__(self, axes: list[tuple[str, list[Value]]]) -> None:
        if not axes:
            raise UsageError("nothing to vary: give --vary PATH=V1,V2,... or a sweep file with `vary:`")
        seen: set[str] = set()
        for path, values in axes:
            if path in seen:
                raise UsageError(f"--vary {path} is given twice")
            if not values:
                raise UsageError(f"--vary {path}: no values (the grid would be empty)")
            seen.add(path)
        self.axes = axes

    @property
    def size(self) -> int:
        return math.prod(len(values) for _, values in self.axes)

    def at(self, index: int) -> Params:
        """Combination `index` (0-based), the last axis varying fastest."""
        out: Params = {}
        for path, values in reversed(self.axes):
            index, pick = divmod(index, len(values))
            out[path] = values[pick]
        return {path: out[path] for path, _ in self.axes}

    def combinations(self, samples: int | None = None, seed: int = 0) -> Iterator[Params]:
        """Every combination in order, or `samples` distinct ones drawn with `seed`."""
        if samples is None or samples >= self.size:
            for index in range(self.size):
                yield self.at(index)
            return
        for index in sorted(random.Random(seed).sample(range(self.size), samples)):
            yield self.at(index)


def check_size(grid: Grid, samples: int | None, *, yes: bool) -> int:
    """The number of trials to run; refuses a sweep over MAX_TRIALS_WITHOUT_YES without --yes."""
    if samples is not None and samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    count = grid.size if samples is None else min(samples, grid.size)
    if count > MAX_TRIALS_WITHOUT_YES and not yes:
        raise UsageError(f"the sweep has {count:,} trials (over {MAX_TRIALS_WITHOUT_YES:,}); "
                         "add --yes to run it, or --samples N for a random sample")
    return count


def trial_key(params: Params) -> str:
    """A trial's identity: its parameters as canonical JSON."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def axes_from_file(value: Any, name: str) -> list[tuple[str, list[Value]]]:
    """The `vary:` mapping of a sweep file: PATH: [values] or PATH: {from: A, to: B, step: S}."""
    if not isinstance(value, dict) or not value:
        raise UsageError(f"{name}: `vary:` must be a non-empty mapping of PATH: [values]")
    axes = []
    for path, spec in value.items():
        if isinstance(spec, dict):
            axes.append((str(path), _range(spec, f"{name}: vary.{path}")))
        elif isinstance(spec, list) and spec and all(not isinstance(v, (dict, list)) for v in spec):
            values = [parse_value(str(v)) if isinstance(v, str) else v for v in spec]
            if not all(isinstance(v, (int, float, str, bool)) and (not isinstance(v, float) or math.isfinite(v))
                       for v in values):
                raise UsageError(f"{name}: vary.{path}: values are numbers, true/false or words")
            if len(set(map(repr, values))) != len(values):
                raise UsageError(f"{name}: vary.{path}: a value is listed twice")
            axes.append((str(path), values))
        else:
            raise UsageError(f"{name}: vary.{path}: expected a list of values or {{from, to, step}}")
    return axes


def _range(spec: dict[str, Any], where: str) -> list[Value]:
    unknown = set(spec) - {"from", "to", "step"}
    if unknown or not {"from", "to"} <= set(spec):
        raise UsageError(f"{where}: a range is {{from: A, to: B, step: S}}")
    start, stop, step = spec["from"], spec["to"], spec.get("step", 1)
    numbers = (start, stop, step)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) or step <= 0:
        raise UsageError(f"{where}: from, to and step must be numbers, step above zero")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count < 1:
        raise UsageError(f"{where}: the range is empty (from {start} to {stop})")
    if count > MAX_TRIALS_WITHOUT_YES:
        raise UsageError(f"{where}: the range has {count:,} values")
    if all(isinstance(v, int) for v in numbers):
        return [start + i * step for i in range(count)]
    return [round(start + i * step, 12) for i in range(count)]
