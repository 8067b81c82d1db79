"""Values worked out once per object and found again by the object's identity. Pure.

A plan's tuples (an account's models, a model's steps, a universe) are immutable and live as
long as the plan, and a cycle asks what is derived from them every session: an `id()` lookup
finds it, where hashing the tuples would walk every element each time (a universe of
thousands of names). Each entry holds its objects, so no other object can take their ids
while it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """At most `size` values, each for the objects it was worked out from (the oldest goes
    first: a long-lived process that loads many plans keeps the newest)."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._found: dict[tuple[int, ...], tuple[tuple[object, ...], V]] = {}

    def get(self, compute: Callable[[], V], *objects: object) -> V:
        """The value for `objects` (by identity), `compute()` the first time."""
        ids = tuple(map(id, objects))
        found = self._found.get(ids)
        if found is None:  # (an entry found by ids holds its objects: they are these ones)
            if len(self._found) >= self._size:
                self._found.pop(next(iter(self._found)))
            found = self._found[ids] = (objects, compute())
        return found[1]
