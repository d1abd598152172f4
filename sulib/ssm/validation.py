"""Argument checks shared by the :mod:`sulib.ssm` modules: arrays, square matrices, vectors,
signals, initial states, and the dtype that the jitted kernels compute in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array


def _as_array(name: str, value, *, min_ndim: int = 0, allow_complex: bool = False) -> np.ndarray:
    """``as_finite_array``, but letting complex values through when ``allow_complex``."""
    if allow_complex:
        try:
            array = np.asarray(value)
        except Exception:  # ragged lists: let as_finite_array word the error
            array = None
        if array is not None and np.iscomplexobj(array):
            if array.ndim < min_ndim:
                raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {array.shape}")
            if array.size and not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contains non-finite values (nan or inf)")
            return array
    return as_finite_array(name, value, min_ndim=min_ndim)


def _square(name: str, value, *, allow_complex: bool = True) -> np.ndarray:
    a = _as_array(name, value, allow_complex=allow_complex)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {a.shape}")
    if a.shape[0] < 1:
        raise ValueError(f"{name} must have N >= 1, got shape {a.shape}")
    return a


def _vector(name: str, value, n: int, other: str, *, allow_complex: bool = True) -> np.ndarray:
    b = _as_array(name, value, allow_complex=allow_complex)
    if b.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match {other}, got shape {b.shape}")
    return b


def _signal(name: str, value) -> np.ndarray:
    u = as_finite_array(name, value, min_ndim=1)
    if u.shape[-1] < 1:
        raise ValueError(f"{name} must have L >= 1 samples on its last axis, got shape {u.shape}")
    return u


def _dtype(*arrays) -> jnp.dtype:
    # float64 / complex128 under x64, float32 / complex64 otherwise (and no truncation warning)
    return jax.dtypes.canonicalize_dtype(np.result_type(np.float64, *(a.dtype for a in arrays)))


def _initial_state(x0, batch: tuple, n: int) -> np.ndarray | None:
    if x0 is None:
        return None
    x0 = _as_array("x0", x0, min_ndim=1, allow_complex=True)
    if x0.shape[-1] != n:
        raise ValueError(f"x0 must have N = {n} entries on its last axis, got shape {x0.shape}")
    try:
        return np.broadcast_to(x0, batch + (n,))
    except ValueError:
        raise ValueError(f"x0 of shape {x0.shape} does not broadcast to the batch shape {batch} of u") from None


def _discrete_system(Abar, Bbar, u, x0):
    Abar = _square("Abar", Abar)
    n = Abar.shape[0]
    Bbar = _vector("Bbar", Bbar, n, "Abar")
    u = _signal("u", u)
    x0 = _initial_state(x0, u.shape[:-1], n)
    dtype = _dtype(Abar, Bbar, u, *(() if x0 is None else (x0,)))
    if x0 is None:
        x0 = np.zeros(u.shape[:-1] + (n,))
    return (jnp.asarray(Abar, dtype), jnp.asarray(Bbar, dtype), jnp.asarray(u, dtype),
            jnp.asarray(x0, dtype))
