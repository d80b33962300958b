"""Where the spot and on-demand prices per worker-hour come from: Static, ConfigMap or Prometheus."""

from __future__ import annotations

from collections.abc import Mapping

from elasticft.api.models import FineTuneJobSpec
from elasticft.types import Prices

# p3.2xlarge (one V100), the instance of the packaged Can't Be Late traces (elasticft/data): on-demand list
# price and the typical spot price the paper uses (k = 3.14). Used when a job names no price.
REFERENCE_PRICES = Prices(spot_per_hour=0.97, on_demand_per_hour=3.06)

CONFIGMAP_SPOT_KEY = "spotPricePerHour"
CONFIGMAP_ON_DEMAND_KEY = "onDemandPricePerHour"


def static_prices(spec: FineTuneJobSpec) -> Prices:
    """The prices written in the job, each falling back to the reference price."""
    spot = spec.capacity.spot.price_per_hour
    on_demand = spec.capacity.on_demand.price_per_hour
    return Prices(
        spot_per_hour=REFERENCE_PRICES.spot_per_hour if spot is None else spot,
        on_demand_per_hour=REFERENCE_PRICES.on_demand_per_hour if on_demand is None else on_demand,
    )


def _price(value: str | float | None, fallback: float) -> float:
    try:
        price = float(value) if value is not None else fallback
    except ValueError:
        return fallback
    return price if price >= 0 else fallback


def prices_from_values(spot: str | float | None, on_demand: str | float | None, fallback: Prices) -> Prices:
    """Prices read from a ConfigMap or Prometheus; a missing or unreadable value keeps the fallback."""
    return Prices(_price(spot, fallback.spot_per_hour), _price(on_demand, fallback.on_demand_per_hour))


def prices_from_configmap(data: Mapping[str, str], fallback: Prices) -> Prices:
    return prices_from_values(data.get(CONFIGMAP_SPOT_KEY), data.get(CONFIGMAP_ON_DEMAND_KEY), fallback)
