"""Parse YAML into plain Python values while remembering where every key and item was written.

PyYAML's constructors drop positions and silently keep the last of duplicate keys; a config
tool must do neither. We compose the node graph ourselves and keep, for every key path, the
1-based (line, column) it came from, so each problem can name FILE:LINE:COL.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from botctl.errors import ConfigProblem

Path = tuple[str | int, ...]
Locations = dict[Path, tuple[int, int]]

MAX_BYTES = 1 << 20  # configs are hand-written; anything bigger is a mistake or an attack
MAX_NODES = 100_000  # bounds alias expansion ("billion laughs")


class _TooManyNodes(Exception):
    pass


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e9`, `1.0e9` and `2.5E-3` as numbers. PyYAML follows YAML
    1.1, where a float needs a dot and a signed exponent (`1.0e+9`), so these plain scalars
    would be text and a number field would report "expected a number, got '1e9'"."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlSource:
    """One parsed config file: its value, where each path was written, and parse problems."""

    def __init__(self, file: str, data: bytes | str) -> None:
        self.file = file
        self.value: Any = None
        self.parsed = False  # True once the text parsed as YAML (a null document included)
        self.locations: Locations = {}
        self.problems: list[ConfigProblem] = []
        self._nodes = 0
        self._parse(data)

    def where(self, path: Path) -> tuple[int, int]:
        """The closest recorded position for `path` (walks up to the nearest known parent)."""
        while path not in self.locations and path:
            path = path[:-1]
        return self.locations.get(path, (1, 1))

    def problem(self, path: Path, message: str) -> ConfigProblem:
        line, col = self.where(path)
        return ConfigProblem(self.file, line, col, format_path(path), message)

    def _parse(self, data: bytes | str) -> None:
        size = len(data)
        if size > MAX_BYTES:
            self.problems.append(
                ConfigProblem(self.file, 1, 1, "", f"file is too large ({size} bytes; the limit is {MAX_BYTES})")
            )
            return
        try:
            node = yaml.compose(data, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            text = exc.problem or exc.context or "invalid YAML"
            self.problems.append(ConfigProblem(self.file, line, col, "", f"invalid YAML: {text}"))
            return
        except yaml.YAMLError as exc:  # e.g. a ReaderError for bytes that are not UTF-8/16
            line, col = (1, 1)
            pos = getattr(exc, "position", None)
            if isinstance(data, bytes) and isinstance(pos, int):
                line = data[:pos].count(b"\n") + 1
            reason = getattr(exc, "reason", None) or "unreadable"
            self.problems.append(ConfigProblem(self.file, line, col, "", f"invalid YAML: {reason}"))
            return
        except RecursionError:
            self.problems.append(ConfigProblem(self.file, 1, 1, "", "invalid YAML: nested too deeply"))
            return
        self.parsed = True
        if node is None:
            self.value = {}
            return
        constructor = yaml.SafeLoader("")
        try:
            self.value = self._build(node, (), constructor)
        except _TooManyNodes:
            self.value, self.parsed = None, False
            self.problems.append(
                ConfigProblem(self.file, 1, 1, "", f"document expands to more than {MAX_NODES} values")
            )
        except RecursionError:
            self.value, self.parsed = None, False
            self.problems.append(ConfigProblem(self.file, 1, 1, "", "invalid YAML: nested too deeply"))

    def _mark(self, path: Path, node: yaml.Node) -> None:
        self.locations.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))

    def _build(self, node: yaml.Node, path: Path, constructor: yaml.SafeLoader) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _TooManyNodes
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._mark(path, key_node)
                    self.problems.append(self.problem(path, "keys must be plain text"))
                    continue
                key = str(self._scalar(key_node, path, constructor))
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(self.problem(path, "merge keys (<<) are not supported"))
                    continue
                child = (*path, key)
                if key in out:
                    line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                    first = self.locations.get(child, (0, 0))[0]
                    self.problems.append(
                        ConfigProblem(self.file, line, col, format_path(child), f"duplicate key (first defined on line {first})")
                    )
                    continue
                self.locations[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self._build(value_node, child, constructor)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self._mark((*path, index), item)
                items.append(self._build(item, (*path, index), constructor))
            return items
        return self._scalar(node, path, constructor)

    def _scalar(self, node: yaml.Node, path: Path, constructor: yaml.SafeLoader) -> Any:
        try:
            value = constructor.construct_object(node, deep=True)
            if isinstance(value, str):
                value.encode("utf-8")  # lone surrogates from escapes like "\ud800" are not text
            elif isinstance(value, float) and not math.isfinite(value):
                self.problems.append(self.problem(path, "must be a finite number (.inf and .nan are not allowed)"))
                return None
            return value
        except yaml.YAMLError as exc:
            self.problems.append(self.problem(path, f"invalid value: {getattr(exc, 'problem', exc)}"))
            return None
        except Exception:  # noqa: BLE001 - a bad tag can raise anything; never echo the value (it may be a key)
            self.problems.append(self.problem(path, "invalid value"))
            return None
