"""`--propose`: the chosen parameters as a unified diff of the config files, for a person to
review and apply (botctl never rewrites a plan itself). Only the values change: comments,
order and layout of the files are kept."""

from __future__ import annotations

import difflib
import re
from typing import Any

from botctl.errors import UsageError
from botctl.research.params import Value, parse_path
from botctl.spec.yamlsource import YamlSource


def _yaml_scalar(value: Value) -> str:
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True).strip()
    return text.removesuffix("...").strip()


def _set_in_text(lines: list[str], source: YamlSource, path: tuple, parent: tuple, key: str, value: Value,
                 shown: str) -> None:
    """Replace the value after `key:` where the file wrote it; or add `key: value` to the
    parent's flow mapping ({...}) when the file leaves it at its default."""
    scalar = _yaml_scalar(value)
    if path in source.locations:
        row, col = source.locations[path]
        line = lines[row - 1]
        # From the line's start, not the recorded column: an earlier edit may have moved it.
        pattern = re.compile(rf"((?<![\w-]){re.escape(key)}\s*:\s*)('[^']*'|\"[^\"]*\"|[^,}}#\s]+)")
        match = pattern.search(line)
        if not match:
            raise UsageError(f"--propose: cannot find the value of {shown} on line {row}; set it to {scalar} by hand")
        lines[row - 1] = line[: match.start(2)] + scalar + line[match.end(2):]
        return
    if parent not in source.locations:
        raise UsageError(f"--propose: {shown} is not written in {source.file}; add `{key}: {scalar}` by hand")
    row, col = source.locations[parent]
    line = lines[row - 1]
    opening = line.find("{", col - 1)
    closing = line.find("}", opening)
    if opening < 0 or closing < 0:
        raise UsageError(f"--propose: {shown} is not written in {source.file}; add `{key}: {scalar}` by hand")
    inside = line[opening + 1: closing].strip()
    lines[row - 1] = line[: opening + 1] + (f"{inside}, " if inside else "") + f"{key}: {scalar}" + line[closing:]


def proposal_diff(strategies: bytes, accounts: bytes, params: dict[str, Value], *,
                  names: tuple[str, str] = ("strategies.yaml", "accounts.yaml")) -> str:
    """A unified diff (a/FILE -> b/FILE) setting every parameter; empty when nothing changes."""
    sources = [YamlSource(names[0], strategies), YamlSource(names[1], accounts)]
    texts = [strategies.decode(), accounts.decode()]
    lines = [text.splitlines(keepends=True) for text in texts]
    s_value: Any = sources[0].value or {}
    a_value: Any = sources[1].value or {}
    for text, value in params.items():
        path = parse_path(text, s_value.get("strategies") or {}, a_value.get("accounts") or {})
        if path.kind == "step":
            steps = s_value["strategies"][path.owner]["steps"]
            index = [i for i, item in enumerate(steps)
                     if (item if isinstance(item, str) else next(iter(item), None)) == path.section][path.nth - 1]
            step: tuple[str | int, ...] = ("strategies", path.owner, "steps", index, path.section)
            _set_in_text(lines[0], sources[0], (*step, path.key), step, path.key, value, text)
        else:
            section: tuple[str | int, ...] = ("accounts", path.owner, path.section)
            _set_in_text(lines[1], sources[1], (*section, path.key), section, path.key, value, text)
    out: list[str] = []
    for name, before, after in zip(names, texts, lines):
        out += difflib.unified_diff(before.splitlines(keepends=True), after, fromfile=f"a/{name}", tofile=f"b/{name}")
    return "".join(out)
