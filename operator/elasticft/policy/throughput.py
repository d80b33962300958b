"""Throughput model: how fast n workers train, fitted to measured (workers, samples/s) points.

The model is the Universal Scalability Law (Gunther), which contains Amdahl's law (kappa = 0):

    X(n) = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))

lam is one worker's throughput, sigma the serial (contention) fraction, kappa the coherency cost that
makes throughput peak and fall for large n. With a constant global batch, the per-step time of
data-parallel training is T_step(n) = T_compute / n + T_sync(n); USL is the same shape with the
synchronisation cost growing with n.

Fitting is separate from predicting (as in AdaptDL's goodput.py): `fit_throughput` turns measurements
into `ThroughputParams`; `predict_throughput` evaluates the curve. With fewer points than parameters,
the unmeasured parameters come from the prior: one point fixes lam with the prior's sigma and kappa; two
distinct sizes fix lam and sigma with the prior's kappa. That prior is what lets the policy size a job
for worker counts it has not run yet.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

ThroughputPoint = tuple[int, float]
"""(workers, samples per second) measured while training at that size."""


@dataclass(frozen=True)
class ThroughputParams:
    """Parameters of X(n) = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))."""

    lam: float
    sigma: float = 0.05
    kappa: float = 0.0


#: Prior for sizes never measured: 5 % contention, no coherency cost (a typical DDP fine-tune).
PRIOR = ThroughputParams(lam=1.0, sigma=0.05, kappa=0.0)


def _usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    result: np.ndarray = lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    return result


def predict_throughput(params: ThroughputParams, workers: int) -> float:
    """X(n) = lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)); X(0) = 0."""
    if workers <= 0:
        return 0.0
    n = float(workers)
    return params.lam * n / (1.0 + params.sigma * (n - 1.0) + params.kappa * n * (n - 1.0))


def fit_throughput(points: Iterable[ThroughputPoint], prior: ThroughputParams = PRIOR) -> ThroughputParams:
    """Least-squares fit of X(n) to the points (mean per size), parameters beyond the data from `prior`.

    lam > 0, 0 <= sigma <= 1, 0 <= kappa <= 1. With no usable point the prior itself is returned.
    """
    return _fit(tuple(sorted((int(n), float(x)) for n, x in points if n > 0 and x > 0)), prior)


@functools.lru_cache(maxsize=256)
def _fit(points: tuple[ThroughputPoint, ...], prior: ThroughputParams) -> ThroughputParams:
    # only the point estimate is used: an exact fit's undefined covariance is no concern here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        return _least_squares(points, prior)


def _least_squares(points: tuple[ThroughputPoint, ...], prior: ThroughputParams) -> ThroughputParams:
    if not points:
        return prior
    sizes = sorted({n for n, _ in points})
    n = np.array([float(size) for size in sizes])
    x = np.array([np.mean([t for m, t in points if m == size]) for size in sizes])
    if len(sizes) == 1:
        scale = (1.0 + prior.sigma * (n[0] - 1.0) + prior.kappa * n[0] * (n[0] - 1.0)) / n[0]
        return ThroughputParams(float(x[0] * scale), prior.sigma, prior.kappa)
    lam0 = float(x[0] / n[0] * (1.0 + prior.sigma * (n[0] - 1.0)))
    if len(sizes) == 2:
        (lam, sigma), _ = curve_fit(
            lambda m, lam, sigma: _usl(m, lam, sigma, prior.kappa), n, x,
            p0=(lam0, prior.sigma), bounds=([1e-12, 0.0], [np.inf, 1.0]),
        )
        return ThroughputParams(float(lam), float(sigma), prior.kappa)
    (lam, sigma, kappa), _ = curve_fit(
        _usl, n, x, p0=(lam0, prior.sigma, max(prior.kappa, 1e-4)), bounds=([1e-12, 0.0, 0.0], [np.inf, 1.0, 1.0]),
    )
    return ThroughputParams(float(lam), float(sigma), float(kappa))
