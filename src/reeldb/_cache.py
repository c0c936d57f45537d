"""A least-recently-used cache bounded by the bytes of what it holds (immutable documents)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ByteLRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Keeps the most recently used values while their sizes add up to at most ``max_bytes``.

    Only for values that never change under their key: nothing is ever invalidated.
    Thread-safe.

    Args:
        max_bytes: The budget; 0 caches nothing. A value larger than the budget is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value, now the most recently used, or None.

        Args:
            key: The key.

        Returns:
            The value or None.
        """
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Keep a value, evicting the least recently used ones past the budget.

        Args:
            key: The key.
            value: The value.
            size: Its size in bytes.
        """
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= old[1]
            self._items[key] = (value, size)
            self.size += size
            while self.size > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.size -= dropped
