"""The plain types every layer shares (no pydantic, no Kubernetes): the objective's mode, prices and a
world's size as spot + on-demand workers. `api`, `policy`, `sim` and `controller` all use these; none of
them needs another layer's model for a size or a price (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


# What the job optimises: MinCost by its deadline, MinTime within its budget, or Balanced between. (No
# docstring: pydantic would put it into the CRD's schema.)
class Mode(StrEnum):
    MIN_COST = "MinCost"
    MIN_TIME = "MinTime"
    BALANCED = "Balanced"


class Size(NamedTuple):
    """A world's size: spot and on-demand workers. A tuple, so the simulator's configurations are Sizes."""

    spot: int
    on_demand: int

    @property
    def total(self) -> int:
        return self.spot + self.on_demand

    def __str__(self) -> str:
        return f"{self.total} ({self.spot} spot + {self.on_demand} on-demand)"


IDLE = Size(0, 0)


@dataclass(frozen=True)
class Prices:
    """USD per worker-hour of each capacity type."""

    spot_per_hour: float
    on_demand_per_hour: float

    def rate(self, spot: int, on_demand: int) -> float:
        """The one cost formula: USD per hour of `spot` + `on_demand` workers."""
        return spot * self.spot_per_hour + on_demand * self.on_demand_per_hour
