"""Fixed-size ring buffers of time-stamped rows for the plots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Ring:
    """The last ``capacity`` rows of (t, value columns), readable without copying.

    Every row is written twice, at ``i`` and ``i + capacity``, so the newest
    ``capacity`` rows are always one contiguous slice: plots get views, not copies.
    Unknown values are NaN.
    """

    def __init__(self, capacity: int, columns: Sequence[str]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.columns = tuple(columns)
        self._index = {name: k + 1 for k, name in enumerate(self.columns)}
        self._data = np.full((2 * capacity, 1 + len(self.columns)), np.nan)
        self._next = 0  # slot the next row goes to, in [0, capacity)
        self.count = 0

    def append(self, t_s: float, values: Sequence[float | None]) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} values, got {len(values)}")
        row = [t_s, *(np.nan if v is None else v for v in values)]
        self._data[self._next] = row
        self._data[self._next + self.capacity] = row
        self._next = (self._next + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    @property
    def last_t(self) -> float | None:
        return None if self.count == 0 else float(self.t[-1])

    def _rows(self) -> np.ndarray:
        end = self._next + self.capacity
        return self._data[end - self.count : end]

    @property
    def t(self) -> np.ndarray:
        """Times, oldest first (a view)."""
        return self._rows()[:, 0]

    def column(self, name: str) -> np.ndarray:
        """One value column, oldest first (a view)."""
        return self._rows()[:, self._index[name]]

    def clear(self) -> None:
        self._data[:] = np.nan
        self._next = 0
        self.count = 0
