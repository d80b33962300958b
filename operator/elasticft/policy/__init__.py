"""The policy layer: pure functions that size a job (docs/policy.md). No I/O, no Kubernetes."""

from elasticft.policy.decision import Decision, PolicyInput, decide
from elasticft.policy.throughput import ThroughputParams, fit_throughput, predict_throughput
from elasticft.types import Mode

__all__ = [
    "Decision",
    "Mode",
    "PolicyInput",
    "ThroughputParams",
    "decide",
    "fit_throughput",
    "predict_throughput",
]
