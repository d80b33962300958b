"""Simulated device time: how long a step would take on an accelerator the sandbox only pretends to have.

Every sandbox worker shares the machine's few CPU cores, so more workers add no real throughput and a
policy that measures would rightly never scale. A sandbox node therefore carries a *device profile*
(`SimulatedDevice`), the kubelet hands it to the pod's containers as `ELASTICFT_SIMULATED_DEVICE`
(JSON), and the trainer pads each optimiser step, *after* doing it for real (forward, backward,
all-reduce and checkpoints on the real model), to the time that device would take:

    T_step(n) = ceil(B / n) * t_sample + T_sync(n)
    T_sync(n) = 2 (n - 1) / n * P / bandwidth + 2 (n - 1) * latency     (ring all-reduce, n > 1)

with B the global batch, n the world size, t_sample one sample's forward and backward, P the bytes of
the trainable parameters' gradients. The world's step is its slowest rank's (the end-of-step vote is a
collective), so pools of different profiles give the slower one's time. Throughput B / T_step(n) is
then the Universal Scalability Law with lam = 1 / t_sample, sigma from the bandwidth term and kappa
from the latency term: sublinear, as on real GPUs, and what the operator measures and fits.

None of this is a GPU measurement: it is labelled *simulated device time* wherever it shows.
This module is pure (no torch) so that the sandbox and the benches can compute the true curve too.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass

#: The env var the sandbox kubelet sets from the node's `elasticft.io/simulated-device` annotation.
SIMULATED_DEVICE_ENV = "ELASTICFT_SIMULATED_DEVICE"
SIMULATED_DEVICE_ANNOTATION = "elasticft.io/simulated-device"


@dataclass(frozen=True)
class SimulatedDevice:
    """A device profile: what one simulated accelerator takes for the job's model."""

    #: e.g. "V100 (simulated)": shown in logs, summaries and plots
    name: str
    #: seconds one sample's forward and backward take on this device
    sample_seconds: float
    #: network bandwidth of the node, Gbit/s, for the gradient all-reduce
    network_gbps: float = 10.0
    #: seconds of latency per ring all-reduce hop
    latency_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("simulated device: name must not be empty")
        if not (self.sample_seconds > 0 and math.isfinite(self.sample_seconds)):
            raise ValueError(f"simulated device {self.name}: sample_seconds must be > 0, not {self.sample_seconds}")
        if not self.network_gbps > 0:
            raise ValueError(f"simulated device {self.name}: network_gbps must be > 0, not {self.network_gbps}")
        if self.latency_seconds < 0:
            raise ValueError(f"simulated device {self.name}: latency_seconds must be >= 0")

    def sync_seconds(self, world_size: int, gradient_bytes: int) -> float:
        """T_sync(n) = 2 (n - 1) / n * P / bandwidth + 2 (n - 1) * latency; 0 for one worker."""
        if world_size <= 1:
            return 0.0
        hops = 2 * (world_size - 1)
        bandwidth_bytes_s = self.network_gbps * 1e9 / 8
        return hops / world_size * gradient_bytes / bandwidth_bytes_s + hops * self.latency_seconds

    def step_seconds(self, samples: int, world_size: int, gradient_bytes: int) -> float:
        """One rank's step: its share of `samples` computed, then the all-reduce."""
        return samples * self.sample_seconds + self.sync_seconds(world_size, gradient_bytes)

    def throughput(self, global_batch: int, world_size: int, gradient_bytes: int) -> float:
        """True samples/s of a world of `world_size` such devices: B / T_step(n), the largest share."""
        share = -(-global_batch // world_size)
        return global_batch / self.step_seconds(share, world_size, gradient_bytes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SimulatedDevice:
        """The profile from its JSON, with an error naming what is wrong."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{SIMULATED_DEVICE_ENV} is not JSON: {error}") from None
        if not isinstance(fields, dict):
            raise ValueError(f"{SIMULATED_DEVICE_ENV} must be a JSON object")
        try:
            return cls(**fields)
        except TypeError as error:
            raise ValueError(f"{SIMULATED_DEVICE_ENV}: {error}") from None


def true_curve(device: SimulatedDevice, global_batch: int, sizes: range | list[int],
               gradient_bytes: int) -> dict[int, float]:
    """{n: samples/s} of the profile at each size: what a perfect fit of the measurements would give."""
    return {n: device.throughput(global_batch, n, gradient_bytes) for n in sizes}


def pad_step(device: SimulatedDevice, step_started: float, samples: int, world_size: int,
             gradient_bytes: int) -> float:
    """Sleep out the rest of the simulated step begun at `step_started` (time.monotonic); returns the
    seconds slept (0 when the real step already took longer than the device would)."""
    remaining = device.step_seconds(samples, world_size, gradient_bytes) - (time.monotonic() - step_started)
    if remaining > 0:
        time.sleep(remaining)
    return max(remaining, 0.0)
