"""Hyperparameters: ``--hp key=value`` strings in, typed values out (pure, no torch).

A TrainingJob carries hyperparameters as a string map (``{epochs: "5"}``),
so every value arrives as text. :class:`HParams` converts on read with a
default, and remembers which keys were read so the runner can warn about
keys nobody used (usually a typo such as ``learning_rate`` for ``lr``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class HParamError(ValueError):
    """A hyperparameter that cannot be parsed or converted."""


def parse_hparams(items: Iterable[str]) -> dict[str, str]:
    """``["epochs=5", "lr=1e-3"]`` -> ``{"epochs": "5", "lr": "1e-3"}``.

    The value is everything after the first ``=`` (it may contain ``=``);
    keys are identifiers (dots and dashes allowed) and may not repeat.
    """
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise HParamError(f"hyperparameter {item!r} is not KEY=VALUE")
        if not _KEY.fullmatch(key):
            raise HParamError(f"hyperparameter name {key!r} is not an identifier")
        if key in parsed:
            raise HParamError(f"hyperparameter {key!r} is given twice")
        parsed[key] = value
    return parsed


class HParams(Mapping[str, str]):
    """Read-only string map with typed getters that record which keys were read."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        self._read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self._read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HParams({self._values!r})"

    def _get(self, key: str, default: T, convert: type | None, kind: str) -> T:
        self._read.add(key)
        if key not in self._values:
            return default
        text = self._values[key].strip()
        try:
            return convert(text) if convert else text  # type: ignore[return-value]
        except ValueError:
            raise HParamError(f"hyperparameter {key}={text!r} is not {kind}") from None

    def get_str(self, key: str, default: str) -> str:
        return self._get(key, default, None, "a string")

    def get_int(self, key: str, default: int) -> int:
        return self._get(key, default, int, "an integer")

    def get_float(self, key: str, default: float) -> float:
        return self._get(key, default, float, "a number")

    def get_bool(self, key: str, default: bool) -> bool:
        self._read.add(key)
        if key not in self._values:
            return default
        text = self._values[key].strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise HParamError(f"hyperparameter {key}={text!r} is not a boolean (true/false)")

    def unread(self) -> list[str]:
        """Keys given but never read: likely typos, worth a warning."""
        return sorted(set(self._values) - self._read)

    def as_dict(self) -> dict[str, str]:
        """A plain copy (for checkpoints and metrics.json); does not count as reading."""
        return dict(self._values)
