"""Constructor-argument checks shared by the classical denoisers; each error names the parameter."""
from __future__ import annotations

import math


def real(name: str, value: float, low: float = 0.0, strict: bool = True, high: float = math.inf) -> float:
    """``value`` as a float if it is finite and in (low, high] (``strict``) or [low, high]; else ValueError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strict else value >= low) and value <= high
    if not ok:
        bound = f"{'>' if strict else '≥'} {low:g}" + (f" and ≤ {high:g}" if math.isfinite(high) else "")
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def whole(name: str, value: int, low: int = 1, odd: bool = False) -> int:
    """``value`` if it is an integer ≥ ``low`` (and odd if ``odd``); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (odd and value % 2 == 0):
        raise ValueError(f"{name} must be {'an odd' if odd else 'an'} integer ≥ {low}, got {value!r}")
    return value
