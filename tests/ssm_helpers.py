"""Independent references and Hypothesis strategies shared by the tests/test_ssm_*.py files."""

import numpy as np
import scipy.special as ssp
from hypothesis import strategies as st

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def numpy_scan(Abar, Bbar, u, x0):
    """The recurrence x_{k+1} = Abar x_k + Bbar u_k as a plain loop; Abar may be (L, N, N)."""
    Abar, Bbar, u = np.asarray(Abar), np.asarray(Bbar), np.asarray(u)
    x = np.broadcast_to(x0, u.shape[:-1] + (Bbar.shape[-1],)).astype(np.result_type(Abar, Bbar, float))
    out = []
    for k in range(u.shape[-1]):
        A_k = Abar[k] if Abar.ndim == 3 else Abar
        B_k = Bbar[k] if Bbar.ndim == 2 else Bbar
        x = x @ A_k.T + u[..., k, None] * B_k
        out.append(x)
    return np.stack(out, axis=-2)


def gauss(n_nodes, a=0.0, b=1.0):
    """Gauss-Legendre nodes and weights on [a, b]."""
    z, w = np.polynomial.legendre.leggauss(n_nodes)
    return a + (b - a) * (z + 1) / 2, w * (b - a) / 2


def shifted_legendre(N, r):
    """sqrt(2n+1) P_n(2r - 1) from scipy, shape (len(r), N)."""
    n = np.arange(N)
    return ssp.eval_legendre(n[None, :], 2 * np.asarray(r)[:, None] - 1) * np.sqrt(2 * n + 1)


def stable_matrix(rng, N, radius, complex_=False):
    M = rng.normal(size=(N, N)) + (1j * rng.normal(size=(N, N)) if complex_ else 0)
    return radius * M / max(np.abs(np.linalg.eigvals(M)).max(), 1e-12)
