"""Decode parsed YAML into spec Structs, reporting *every* problem with its position.

msgspec stops at the first error, which is right for a wire format and wrong for a config
file a person edits: we walk the Struct's declared fields ourselves, check each value with
msgspec, and only build the Struct once the whole tree is known to be valid.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

import msgspec

from botctl.errors import ConfigProblem
from botctl.spec.yamlsource import Path, YamlSource


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin is list:
        return "a list"
    if origin is dict or _is_struct(tp):
        return "a mapping"
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(tp, str(tp))


class Decoder:
    def __init__(self, source: YamlSource) -> None:
        self.source = source
        self.problems: list[ConfigProblem] = []

    def fail(self, path: Path, message: str) -> bool:
        self.problems.append(self.source.problem(path, message))
        return False

    def check(self, value: Any, tp: Any, path: Path) -> bool:
        """True when `value` converts to `tp`; otherwise records why, for every bad leaf."""
        if _is_struct(tp):
            return self._check_struct(value, tp, path)
        origin = get_origin(tp)
        if origin is dict:
            if not isinstance(value, dict):
                return self.fail(path, f"expected a mapping, got {describe(value)}")
            _, value_tp = get_args(tp)
            results = [self.check(v, value_tp, (*path, k)) for k, v in value.items()]
            return all(results)
        if origin is list:
            if not isinstance(value, list):
                return self.fail(path, f"expected a list, got {describe(value)}")
            (item_tp,) = get_args(tp)
            results = [self.check(v, item_tp, (*path, i)) for i, v in enumerate(value)]
            return all(results)
        if origin in (Union, types.UnionType):
            options = get_args(tp)
            if value is None and type(None) in options:
                return True
            structs = [o for o in options if _is_struct(o)]
            if isinstance(value, dict) and structs:
                return self._check_struct(value, structs[0], path)
            others = [o for o in options if not _is_struct(o) and o is not type(None)]
            if any(self._converts(value, o) for o in others):
                return True
            return self.fail(path, f"expected {_type_name(tp)}, got {self._show(value)}")
        if self._converts(value, tp):
            return True
        return self.fail(path, f"expected {_type_name(tp)}, got {self._show(value)}")

    @staticmethod
    def _show(value: Any) -> str:
        if isinstance(value, str) and len(value) <= 40 and value.isprintable():
            return repr(value)
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return f"{value!r} (write it as {int(value)})"  # 1e3 where a count belongs
        return describe(value)

    @staticmethod
    def _converts(value: Any, tp: Any) -> bool:
        if tp is Any or tp is typing.Any:
            return True
        if tp is bool and not isinstance(value, bool):
            return False
        if tp in (int, float) and isinstance(value, bool):
            return False
        try:
            msgspec.convert(value, tp)
        except (msgspec.ValidationError, TypeError):
            return False
        return True

    def _check_struct(self, value: Any, tp: type, path: Path) -> bool:
        if not isinstance(value, dict):
            return self.fail(path, f"expected a mapping, got {describe(value)}")
        fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
        ok = True
        for key in value:
            if key not in fields:
                known = ", ".join(sorted(fields))
                ok = self.fail((*path, key), f"unknown key (expected one of: {known})")
        for name, field in fields.items():
            if name in value:
                ok = self.check(value[name], field.type, (*path, name)) and ok
            elif field.required:
                ok = self.fail(path, f"missing required key '{name}'")
        return ok

    def build(self, value: Any, tp: type, path: Path) -> Any:
        """Check then construct; None when there were problems."""
        if not self.check(value, tp, path):
            return None
        try:
            return msgspec.convert(value, tp)
        except msgspec.ValidationError as exc:  # a rule the field walk could not see
            self.fail(path, str(exc).split(" - at ")[0])
            return None
