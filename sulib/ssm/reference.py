"""A high-accuracy reference solution of a HiPPO ODE (:func:`solve_held`), independent of the
discretizations of this package.
"""

from __future__ import annotations

import numpy as np

from sulib._checks import positive_scalar
from sulib.ssm.discretize import _legs_start
from sulib.ssm.validation import _signal, _square, _vector

__all__ = [
    "solve_held",
]


def solve_held(A, B, u, dt: float, *, scale_invariant: bool = False, rtol: float = 1e-12,
               atol: float = 1e-14) -> np.ndarray:
    """High-accuracy reference solution of a HiPPO ODE driven by a held (piecewise-constant) input.

    Integrates ``x' = A x + B u`` (``scale_invariant=False``) or ``x' = (A x + B u) / t``
    (``scale_invariant=True``) from ``x(0) = 0`` with ``u(t) = u_k`` on ``[k dt, (k+1) dt)``,
    one piece at a time with SciPy's adaptive DOP853 (so no solver step straddles a jump of
    the input), and returns the state at the end of every piece. Independent of the
    discretizations of :mod:`sulib.ssm`: nothing here uses ``expm`` or the step rules. For the
    scale-invariant ODE the first piece starts at the singular point ``t = 0``; there the
    bounded solution is the constant ``x = -A⁻¹ B u_0`` (what :func:`legs_step_matrices`
    uses), and the solver takes over from ``t = dt``. Not jitted (a SciPy loop over pieces).

    Args:
        A: ``(N, N)`` real or complex; B: ``(N,)``.
        u: ``(L,)`` held input values. dt: piece length > 0.
        scale_invariant: which of the two ODEs.
        rtol, atol: tolerances handed to ``scipy.integrate.solve_ivp`` (> 0).

    Returns:
        ``(L, N)`` NumPy array: row ``k`` is ``x((k+1) dt)`` (complex if ``A`` or ``B`` is).
    """
    from scipy.integrate import solve_ivp  # SciPy ships with JAX; imported here to keep sulib light

    A = _square("A", A)
    B = _vector("B", B, A.shape[0], "A")
    u = _signal("u", u)
    if u.ndim != 1:
        raise ValueError(f"u must be 1-d (L,), got shape {u.shape}")
    dt = positive_scalar("dt", dt)
    rtol = positive_scalar("rtol", rtol)
    atol = positive_scalar("atol", atol)
    dtype = np.result_type(A, B, np.float64)
    x = np.zeros(A.shape[0], dtype)
    out = np.empty((u.size, A.shape[0]), dtype)
    for k, uk in enumerate(u):
        if scale_invariant and k == 0:
            x = _legs_start(A, B).astype(dtype) * uk
        else:
            drive = B * uk
            rhs = (lambda t, y: (A @ y + drive) / t) if scale_invariant else (lambda t, y: A @ y + drive)
            sol = solve_ivp(rhs, (k * dt, (k + 1) * dt), x, method="DOP853", rtol=rtol, atol=atol)
            if not sol.success:  # pragma: no cover - DOP853 on these linear systems does not fail
                raise RuntimeError(f"solve_ivp failed on piece {k}: {sol.message}")
            x = sol.y[:, -1]
        out[k] = x
    return out
