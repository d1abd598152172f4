"""Power-law fits: the log-log regression every convergence-order and scaling-law plot needs.

``power_law_fit(x, y)`` fits ``y ≈ prefactor · x**exponent`` by least squares on ``(log x, log y)`` and
reports the standard error of the exponent, so a chapter can print "slope 1.98 ± 0.03" and assert on it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sulib._checks import as_finite_array


class PowerLawFit(NamedTuple):
    """Result of :func:`power_law_fit`: ``y ≈ prefactor · x**exponent``.

    ``stderr`` is the standard error of ``exponent`` from the residuals of the log-log regression
    (``nan`` when only two points are fitted: two points leave no residual degrees of freedom).
    """

    exponent: float
    prefactor: float
    stderr: float


def power_law_fit(x, y) -> PowerLawFit:
    """Least-squares fit of ``log y = log prefactor + exponent · log x``.

    Args:
        x: shape (n,), n >= 2, positive, at least two distinct values.
        y: shape (n,), positive.

    Returns:
        PowerLawFit(exponent, prefactor, stderr).
    """
    x = as_finite_array("x", x)
    y = as_finite_array("y", y)
    if x.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {x.shape}")
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape of x {x.shape}, got {y.shape}")
    if x.size < 2:
        raise ValueError(f"x must hold at least 2 points, got {x.size}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be > 0 for a log-log fit")
    if np.ptp(x) == 0:
        raise ValueError("x must hold at least two distinct values")
    u, v = np.log(x), np.log(y)
    um = u - u.mean()
    exponent = float(um @ (v - v.mean()) / (um @ um))
    intercept = float(v.mean() - exponent * u.mean())
    residual = v - intercept - exponent * u
    dof = x.size - 2
    stderr = float(np.sqrt(residual @ residual / dof / (um @ um))) if dof > 0 else float("nan")
    return PowerLawFit(exponent, float(np.exp(intercept)), stderr)
