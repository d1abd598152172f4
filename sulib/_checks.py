"""Argument checks shared by sulib's public functions.

Public functions validate on the host, with messages that name the argument, and only
then call their jitted kernels, so bad input never reaches XLA as a silent NaN.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def as_finite_array(name: str, value, *, min_ndim: int = 0) -> np.ndarray:
    """``value`` as a float array, or a ValueError/TypeError that names ``name``."""
    try:
        array = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be array-like of numbers, got {type(value).__name__}") from exc
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real, got complex dtype {array.dtype}")
    if array.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {array.shape}")
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values (nan or inf)")
    return array


def positive_int(name: str, value, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_scalar(name: str, value) -> float:
    """``value`` as a finite float > 0, or an error naming ``name``."""
    if value is None:
        raise ValueError(f"{name} must be a number > 0, got None")
    array = as_finite_array(name, value)
    if array.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {array.shape}")
    if not array > 0:
        raise ValueError(f"{name} must be > 0, got {float(array)}")
    return float(array)


def one_of(name: str, value, options: Iterable[str]) -> str:
    """``value`` if it is one of ``options``, or a ValueError listing them."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, options))}")
    return value


def index_array(name: str, value, n: int, k: int) -> np.ndarray:
    """``value`` as an integer array of shape ``(n,)`` with entries in ``[0, k)`` (indices into
    ``k`` codes, say), or an error naming ``name``."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {array.shape}")
    if array.size and (array.min() < 0 or array.max() >= k):
        raise ValueError(f"{name} must lie in [0, {k}), got range [{array.min()}, {array.max()}]")
    return array
