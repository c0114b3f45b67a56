"""Percentiles that stay honest when some answers never arrived (censored at the give-up time)."""

from __future__ import annotations

import math

from pydantic import BaseModel


class Quantile(BaseModel):
    """A percentile in seconds; `censored` means the true value is larger (answers still missing)."""

    seconds: float
    censored: bool = False

    def show(self, unit: str = "ms") -> str:
        value = self.seconds * 1000 if unit == "ms" else self.seconds
        text = f"{value:,.0f} ms" if unit == "ms" else f"{value:,.2f} s"
        return f"> {text}" if self.censored else text


def quantile(values: list[float | None], q: float, censor_at: float | None = None) -> Quantile | None:
    """Nearest-rank percentile; `None` values count as slower than everything seen (at `censor_at`)."""
    if not values:
        return None
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    index = min(len(ranked) - 1, max(0, math.ceil(q * len(ranked)) - 1))
    value = ranked[index]
    if value is None:
        return Quantile(seconds=censor_at or 0.0, censored=True)
    return Quantile(seconds=value)
