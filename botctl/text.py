"""Text from files, the journal or a broker, made safe to print: every character that is not
printable (control characters such as ESC and newline, bidi overrides, zero-width marks) is
shown as its escape (`\\x1b`, `\\n`, `\\u202e`), so such text can neither drive the
operator's terminal nor split one line of output into two. The one helper for all output."""

from __future__ import annotations

from typing import Any

import msgspec


def printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_tree(value: Any) -> Any:
    """`value` (dicts, lists, msgspec records, strings, numbers) with every string escaped."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(printable_tree(v) for v in value)
    if isinstance(value, msgspec.Struct):
        changes = {f: printable(v) for f in value.__struct_fields__ if isinstance(v := getattr(value, f), str)}
        return msgspec.structs.replace(value, **changes) if changes else value
    return value
