"""Throughput of the running world from successive readings of the global step."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Readings older than this do not describe the current pace.
WINDOW_S = 30.0
MIN_SPAN_S = 2.0


@dataclass
class StepRate:
    """samples/s = Δstep × globalBatchSize / Δt over a sliding window of one world's readings.

    A reading from another world restarts the window: each world size gets its own rate."""

    global_batch_size: int
    world: int = -1
    readings: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, world: int, time_s: float, step: int) -> float | None:
        """Record the step seen at time_s; the rate over the window, or None until measurable."""
        if world != self.world or (self.readings and step < self.readings[-1][1]):
            self.world = world
            self.readings.clear()
        self.readings.append((time_s, step))
        while len(self.readings) > 2 and time_s - self.readings[0][0] > WINDOW_S:
            self.readings.popleft()
        # A world still loading its checkpoint shows a flat step: start the window at the first move.
        while len(self.readings) > 1 and self.readings[0][1] == self.readings[1][1]:
            self.readings.popleft()
        (t0, s0), (t1, s1) = self.readings[0], self.readings[-1]
        if t1 - t0 < MIN_SPAN_S or s1 == s0:
            return None
        return (s1 - s0) * self.global_batch_size / (t1 - t0)
