"""Where the zeros of a polynomial lie: the Schur–Cohn (Jury) test, its reflection coefficients,
and an exact transfer function of the bilinear HiPPO-LegS system (post 10180).

Polynomials are monic and given, as in :func:`sulib.ssm.kernel_rational`, by ``a = (a_1, …, a_d)``:

    ``p(λ) = λ^d + a_1 λ^{d-1} + … + a_d``    (the denominator ``det(λI - Abar)`` of RTF).

``p`` is *Schur stable* when every zero has ``|λ| < 1``: the recurrence with that characteristic
polynomial then decays. The Schur–Cohn test decides it in ``O(d²)`` arithmetic operations,
with no root finding. Write ``p_d = p`` and ``k_d = a_d`` (the product of the zeros, up to sign).
If ``|k_d| < 1``, the *step-down*

    ``p_{d-1}(λ) = (p_d(λ) - k_d p_d^*(λ)) / (λ (1 - k_d²))``,   ``p_d^*(λ) = λ^d p_d(1/λ)``

(``p^*`` reverses the coefficients) is monic of degree ``d - 1``, and ``p_d`` is stable if and
only if ``p_{d-1}`` is (Schur 1917, Cohn 1922; Jury's table arranges the same recursion). So

    ``p`` is stable  ⇔  ``|k_j| < 1`` for ``j = 1, …, d``,

where ``k_j`` is the constant coefficient of ``p_j``: the *reflection coefficients* (partial
autocorrelations, in the language of Levinson's recursion). The step-up
``p_j(λ) = λ p_{j-1}(λ) + k_j p_{j-1}^*(λ)`` inverts the step-down, so :func:`step_up` maps the open
cube ``(-1, 1)^d`` one-to-one onto the stable coefficients: a parametrization of exactly the
stable set.

Functions:
    :func:`reflection_coefficients`  float, batched, jitted step-down;
    :func:`step_up`                  float, batched, jitted, differentiable inverse;
    :func:`schur_cohn_stable`        the test: exact in rationals (``fractions.Fraction``) or in
                                     float64, batched;
    :func:`reflection_coefficients_exact`  the step-down in rationals;
    :func:`legs_transfer_exact`      ``(b, a)`` of HiPPO-LegS under the bilinear rule, in rationals.

Only real coefficients are handled (RTF's ``a`` and ``b`` are real).
"""

from __future__ import annotations

import numbers
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from sulib._checks import as_finite_array, positive_int, positive_scalar
from sulib.ssm.validation import _dtype

__all__ = [
    "reflection_coefficients",
    "step_up",
    "schur_cohn_stable",
    "reflection_coefficients_exact",
    "legs_transfer_exact",
]


# ------------------------------------------------------------------------------ inputs


def _coefficients(name: str, value) -> np.ndarray:
    """``value`` as a real float array of shape ``(..., d)``, ``d >= 1``."""
    array = as_finite_array(name, value, min_ndim=1)
    if array.shape[-1] < 1:
        raise ValueError(f"{name} must have d >= 1 entries on its last axis, got shape {array.shape}")
    return array


def _rational(name: str, x) -> Fraction:
    """An exact rational from an int, Fraction, SymPy Rational or a finite float (its exact value)."""
    if isinstance(x, bool):
        raise TypeError(f"{name} must hold real numbers, got a bool")
    if isinstance(x, np.integer):
        return Fraction(int(x))
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            raise ValueError(f"{name} contains non-finite values (nan or inf)")
        return Fraction(float(x))  # exact: every double is a dyadic rational
    if type(x).__module__.startswith("sympy") and getattr(x, "is_Rational", False):
        return Fraction(int(x.p), int(x.q))
    raise TypeError(f"{name} must hold int, Fraction, float or SymPy Rational entries, "
                    f"got {type(x).__name__}")


def _is_exact(a) -> bool:
    """True when every entry of ``a`` is an exact rational (int, Fraction, SymPy Rational)."""
    if isinstance(a, np.ndarray):
        if a.ndim != 1:
            return False  # a batch: the float path
        if a.dtype != object:
            return bool(np.issubdtype(a.dtype, np.integer))
    try:
        items = list(a)
    except TypeError:
        return False
    return bool(items) and all(
        (isinstance(x, (numbers.Rational, np.integer)) and not isinstance(x, bool))
        or (type(x).__module__.startswith("sympy") and getattr(x, "is_Rational", False))
        for x in items)


# ------------------------------------------------------------------------ float, jitted


def _reversed_prefix(c, j):
    """``c[..., j - i]`` for ``i <= j`` and 0 for ``i > j`` (fixed shape, dynamic ``j``)."""
    idx = j - jnp.arange(c.shape[-1])
    return jnp.where(idx >= 0, jnp.take(c, jnp.clip(idx, 0), axis=-1), 0.0)


@jax.jit
def _step_down(a):
    d = a.shape[-1]
    c = jnp.concatenate([jnp.ones(a.shape[:-1] + (1,), a.dtype), a], axis=-1)  # (..., d+1)
    pos = jnp.arange(d + 1)

    def stage(s, carry):  # s = 0 .. d-1 handles degree j = d - s
        c, ks, alive = carry
        j = d - s
        k = jnp.take(c, j, axis=-1)
        alive = alive & (jnp.abs(k) < 1)
        ks = ks.at[..., j - 1].set(jnp.where(alive, k, jnp.nan))
        safe = jnp.where(alive, k, 0.0)[..., None]
        c = jnp.where(pos < j, (c - safe * _reversed_prefix(c, j)) / (1 - safe**2), 0.0)
        return c, ks, alive

    ks = jnp.zeros(a.shape, a.dtype)
    _, ks, _ = jax.lax.fori_loop(0, d, stage, (c, ks, jnp.ones(a.shape[:-1], bool)))
    return ks


def reflection_coefficients(a) -> jax.Array:
    """Reflection coefficients ``(k_1, …, k_d)`` of ``λ^d + a_1 λ^{d-1} + … + a_d`` by the step-down.

    ``k_d = a_d``; ``k_j`` is the constant coefficient of the degree-``j`` polynomial of the
    step-down (module docstring). The step-down is only defined while ``|k| ≠ 1``; it stops at the
    first ``|k_j| >= 1`` (the polynomial is then not stable) and that entry and those of lower ``j``
    are ``nan``. ``2d²`` flops per polynomial, float64 under x64.

    Args:
        a: ``(..., d)`` real, ``d >= 1``.

    Returns:
        ``(..., d)``, ``[..., j-1] = k_j``; all finite and in ``(-1, 1)`` iff the polynomial is stable.
    """
    a = _coefficients("a", a)
    return _step_down(jnp.asarray(a, _dtype(a)))


@jax.jit
def _step_up(k):
    d = k.shape[-1]
    pos = jnp.arange(d + 1)
    c = jnp.zeros(k.shape[:-1] + (d + 1,), k.dtype).at[..., 0].set(1)

    def stage(j, c):  # degree j - 1 -> j: c_i += k_j c_{j-i} for i <= j (c_j was 0)
        kj = jnp.take(k, j - 1, axis=-1)[..., None]
        return jnp.where(pos <= j, c + kj * _reversed_prefix(c, j), c)

    return jax.lax.fori_loop(1, d + 1, stage, c)[..., 1:]


def step_up(k) -> jax.Array:
    """Coefficients ``a`` of the monic polynomial with reflection coefficients ``k``.

    ``p_0 = 1``, ``p_j(λ) = λ p_{j-1}(λ) + k_j λ^{j-1} p_{j-1}(1/λ)``; the inverse of
    :func:`reflection_coefficients`. A polynomial map (differentiable everywhere); it takes the
    open cube ``(-1, 1)^d`` one-to-one onto the Schur-stable ``a`` (so ``a = step_up(tanh θ)``
    parametrizes exactly the stable denominators). ``d²`` multiply-adds.

    Args:
        k: ``(..., d)`` real, ``d >= 1`` (any real values; outside the cube the result is unstable).
            A JAX array (or tracer) is passed through unchecked for finiteness, so that ``jax.grad``
            and ``jax.jacfwd`` can differentiate through ``step_up``.

    Returns:
        ``a`` ``(..., d)``, ``[..., i-1] = a_i``.
    """
    if isinstance(k, jax.Array):  # also a tracer: step_up is meant to be differentiated
        if k.ndim < 1 or k.shape[-1] < 1:
            raise ValueError(f"k must have shape (..., d) with d >= 1, got shape {k.shape}")
        if not jnp.issubdtype(k.dtype, jnp.floating):
            raise TypeError(f"k must be a real floating-point array, got dtype {k.dtype}")
        return _step_up(k)
    k = _coefficients("k", k)
    return _step_up(jnp.asarray(k, _dtype(k)))


# ------------------------------------------------------------------------------- exact


def reflection_coefficients_exact(a) -> list[Fraction]:
    """The step-down of :func:`reflection_coefficients` in exact rational arithmetic.

    Floats are taken at their exact binary value (``Fraction(0.1)`` is the double nearest 0.1), so
    the verdict is the true one for the polynomial whose coefficients are those doubles.

    Args:
        a: ``(d,)`` sequence of int, ``fractions.Fraction``, SymPy ``Rational`` or finite float.

    Returns:
        ``[k_1, …, k_d]`` as Fractions, or, when the step-down stops at a first ``|k_j| >= 1``,
        only ``[k_j, …, k_d]`` (shorter than ``d``: the polynomial is not stable).
    """
    if isinstance(a, (str, bytes)) or not hasattr(a, "__len__"):
        raise TypeError(f"a must be a sequence of rationals, got {type(a).__name__}")
    if np.ndim(np.asarray(a, dtype=object)) != 1 or len(a) < 1:
        raise ValueError(f"a must have shape (d,) with d >= 1, got {np.shape(np.asarray(a, dtype=object))}")
    c = [Fraction(1)] + [_rational("a", x) for x in a]
    ks: list[Fraction] = []
    for j in range(len(c) - 1, 0, -1):
        k = c[j]
        ks.append(k)
        if abs(k) >= 1:
            break
        scale = 1 - k * k
        c = [(c[i] - k * c[j - i]) / scale for i in range(j)]
    return ks[::-1]


def schur_cohn_stable(a, *, exact: bool | None = None):
    """Whether every zero of ``λ^d + a_1 λ^{d-1} + … + a_d`` has modulus ``< 1`` (Schur–Cohn test).

    Args:
        a: ``(d,)``, or ``(..., d)`` for the float path.
        exact: True: rational arithmetic (``(d,)`` only; floats at their exact value), the
            verdict is exact, a zero on the unit circle counts as unstable. False: float64
            step-down (:func:`reflection_coefficients`), batched; near the boundary it can be
            wrong by rounding. None (default): exact when every entry is an int, Fraction or SymPy
            Rational (and ``a`` is one polynomial), float otherwise.

    Returns:
        a Python bool (exact path) or a boolean array of shape ``a.shape[:-1]`` (float path).
    """
    if exact is None:
        exact = _is_exact(a)
    if exact:
        ks = reflection_coefficients_exact(a)
        return len(ks) == len(a) and all(abs(k) < 1 for k in ks)
    k = np.asarray(reflection_coefficients(a))
    out = np.all(np.abs(k) < 1, axis=-1)  # nan compares False
    return bool(out) if out.ndim == 0 else out


def legs_transfer_exact(N: int, dt, c=None) -> tuple[list[Fraction], list[Fraction]]:
    """Exact ``(b, a)`` of HiPPO-LegS (``hippo("legs", N)``) under the bilinear rule with step ``dt``.

    ``Abar = (I - dt A/2)⁻¹ (I + dt A/2)``, ``Bbar = (I - dt A/2)⁻¹ dt B`` and output
    ``C_n = c_n √(2n+1)`` (``c = 1``: ``C = B``). The square roots disappear in the similar system
    ``x = diag(√(2n+1)) x̃``: ``Ã_{nk} = -(2k+1)`` below the diagonal, ``-(n+1)`` on it,
    ``B̃ = 1``, ``C̃_n = (2n+1) c_n``; ``(b, a)`` is a similarity invariant. ``A`` is lower
    triangular, so ``a`` is the product of ``λ - μ_n``, ``μ_n = (1 - h(n+1))/(1 + h(n+1))``,
    ``h = dt/2``. The numerator ``b(λ) = C^* adj(λI - Abar) Bbar = a(λ) C^*(λI - Abar)⁻¹ Bbar`` is
    evaluated at ``λ = 2, …, N+1`` (where ``(λI - Abar)⁻¹ Bbar = [(λ-1)I - h(λ+1)Ã]⁻¹ dt B̃`` is a
    lower-triangular solve with a running sum, ``O(N)``) and interpolated (Newton's divided
    differences): ``O(N²)`` rational operations in all.

    This is the untruncated generating function (``C``, not ``C̃ = (I - Abar^L)^* C``), equal to the
    truncated one when ``Abar^L`` is negligible.

    Args:
        N: state size ``>= 1``.
        dt: step ``> 0``; a float is taken at its exact binary value (the system the float
            pipeline builds), or pass an int or a Fraction.
        c: ``(N,)`` rationals (default ones).

    Returns:
        ``(b, a)``, two lists of ``N`` Fractions, highest power first (as
        :func:`sulib.ssm.transfer_function`).
    """
    N = positive_int("N", N)
    if isinstance(dt, (Fraction, int)) and not isinstance(dt, bool):
        h = Fraction(dt) / 2
        if h <= 0:
            raise ValueError(f"dt must be > 0, got {dt}")
    else:
        h = Fraction(positive_scalar("dt", dt)) / 2
    if c is None:
        c = [Fraction(1)] * N
    else:
        if isinstance(c, (str, bytes)) or not hasattr(c, "__len__") or len(c) != N:
            raise ValueError(f"c must be a sequence of N = {N} rationals")
        c = [_rational("c", x) for x in c]
    out = [(2 * n + 1) * c[n] for n in range(N)]
    mus = [(1 - h * (n + 1)) / (1 + h * (n + 1)) for n in range(N)]
    a = [Fraction(1)]
    for mu in mus:  # multiply by (λ - μ_n)
        a = [x - mu * y for x, y in zip(a + [Fraction(0)], [Fraction(0)] + a)]

    nodes = [Fraction(m) for m in range(2, N + 2)]  # outside the spectrum (|μ_n| < 1)
    values = []
    for lam in nodes:
        g, y, s = h * (lam + 1), Fraction(0), Fraction(0)
        total = Fraction(0)
        for n in range(N):  # row n: (λ-1) y_n + g (s_n + (n+1) y_n) = dt, s_n = Σ_{k<n} (2k+1) y_k
            y = (2 * h - g * s) / (lam - 1 + g * (n + 1))
            s += (2 * n + 1) * y
            total += out[n] * y
        char = Fraction(1)
        for mu in mus:
            char *= lam - mu
        values.append(char * total)
    coef = list(values)  # Newton's divided differences
    for j in range(1, N):
        for i in range(N - 1, j - 1, -1):
            coef[i] = (coef[i] - coef[i - 1]) / (nodes[i] - nodes[i - j])
    b = [coef[-1]]  # Horner in Newton form, monomial coefficients highest first
    for i in range(N - 2, -1, -1):
        b = [x - nodes[i] * y for x, y in zip(b + [Fraction(0)], [Fraction(0)] + b)]
        b[-1] += coef[i]
    return b, a[1:]
