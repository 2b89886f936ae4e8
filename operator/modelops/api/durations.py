"""The one duration form of modelops.io/v1beta1, and its conversion to and from seconds.

v1beta1 writes every duration as a Go duration string (what metav1.Duration
and `kubectl` users know: "90s", "1h30m", "250ms"), never as an integer with
the unit in the field name. v1alpha1 had both, so conversion needs to read a
duration exactly (no float rounding: 0.1s must stay 100ms) and to write a
whole number of a unit back in the shortest Go spelling.

Units: h, m, s, ms, us. Go also accepts ns and "µs"; no modelops field needs
a nanosecond, and an ASCII-only form keeps the CRD pattern simple.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Units a v1beta1 duration may use, in seconds.
UNITS: dict[str, Fraction] = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
    "us": Fraction(1, 1_000_000),
}
# RE2-compatible (the API server checks it in Go).
DURATION = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us))+$"
# The same without sub-millisecond units, for fields whose consumer counts in ms or coarser.
DURATION_MS = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$"

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us)")
_WHOLE = re.compile(DURATION)


class DurationError(ValueError):
    """Not a duration in the v1beta1 form."""


def parse(text: str) -> Fraction:
    """Exact seconds of a duration such as "1h30m" or "0.5s"."""
    if not _WHOLE.match(text):
        raise DurationError(f"{text!r} is not a duration such as 90s, 1h30m or 250ms")
    total = Fraction(0)
    for number, unit in _PART.findall(text):
        whole, _, decimals = number.partition(".")
        # Integer arithmetic: Fraction("1.5") parses with a regular expression, slowly.
        value = Fraction(int(whole + decimals), 10 ** len(decimals)) if decimals else int(whole)
        total += value * UNITS[unit]
    return total


def format_seconds(seconds: int) -> str:
    """Whole seconds in the shortest Go-like spelling: 0s, 45s, 1m, 1h30m, 1h0m5s -> 1h5s."""
    if seconds < 0:
        raise DurationError("durations are not negative")
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def format_microseconds(microseconds: int) -> str:
    """Whole microseconds: whole seconds as format_seconds, else ms or us (100us, 2500us)."""
    if microseconds < 0:
        raise DurationError("durations are not negative")
    seconds, rest = divmod(microseconds, 1_000_000)
    if rest == 0:
        return format_seconds(seconds)
    if microseconds % 1000 == 0:
        return f"{microseconds // 1000}ms"
    return f"{microseconds}us"


def whole_seconds(text: str) -> int:
    """Seconds of a duration, rounded up to a whole second (a deadline never shrinks)."""
    value = parse(text)
    return -(-value.numerator // value.denominator)


def whole_microseconds(text: str) -> int:
    """Microseconds of a duration (exact: the form has no unit below a microsecond)."""
    return int(parse(text) * 1_000_000)
