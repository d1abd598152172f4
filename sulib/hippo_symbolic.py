"""Exact (SymPy) derivations of the HiPPO matrices from their projection integrals (post 10114).

Conventions of post 10114 (kexue.fm/archives/10114), used throughout:

* Legendre polynomials ``p_n`` on ``s ∈ [-1, 1]`` and the orthonormal basis
  ``g_n(s) = √((2n+1)/2) p_n(s)``; the state is ``c_n(T) = ∫_{-1}^1 u(t_T(s)) g_n(s) ds``.
* LegT: ``t_T(s) = (s+1) w/2 + T - w`` (the window ``[T-w, T]``), ``c' = A c + B u``.
* LegS: ``t_T(s) = (s+1) T/2`` (the whole history ``[0, T]``), ``c' = (A c + B u) / T``.

Differentiating ``c_n(T)`` and integrating by parts (post eq. hippo-base) gives, with the ratio
``ρ = (∂t/∂T) / (∂t/∂s)``,
``c_n' = [u ρ g_n]_{s=-1}^{s=1} - ∫ u d(ρ g_n)``. Every ``∫ u q(s) ds`` with a polynomial
``q`` of degree <= n is a combination of the ``c_k``, k <= n, with coefficients ``∫ g_k q ds``;
the boundary value ``u(T - w)`` of LegT is not, and the post closes it with the truncation
``u(T - w) ≈ Σ_k c_k g_k(-1)``. So (``k``, ``n`` from 0; matrices ``(N, N)``, vectors ``(N,)``)

* LegT: ``A_nk = -(2/w) (g_n(-1) g_k(-1) + ∫ g_k g_n' ds)``, ``B_n = (2/w) g_n(1)``;
* LegS: ``A_nk = -∫ g_k (g_n + (s+1) g_n') ds``, ``B_n = 2 g_n(1)`` (no truncation).

:func:`legt_from_integrals` and :func:`legs_from_integrals` evaluate exactly these integrals;
:func:`legs_from_monomials` solves for LegS's ``(A, B)`` from the coefficients of the signals
``u = t^j`` instead, without the integration by parts. The closed forms printed in the post are
:func:`legt_closed_form`, :func:`legs_closed_form`, :func:`post_lmu_closed_form`; the Legendre
Memory Unit's own system (Voelker et al. 2019) is :func:`lmu_closed_form`.

All functions return exact SymPy objects (rationals and square roots); none uses floating point.
"""

from __future__ import annotations

from typing import Callable, Sequence

import sympy as sp

from sulib._checks import positive_int

__all__ = [
    "S",
    "orthonormal_legendre",
    "legendre_generating_identities",
    "legendre_identities_upto",
    "legendre_identity_failures",
    "reparametrization_residual",
    "legt_from_integrals",
    "legs_from_integrals",
    "legs_from_monomials",
    "legt_closed_form",
    "legs_closed_form",
    "post_lmu_closed_form",
    "lmu_closed_form",
    "post_legs_unit_closed_form",
    "theorem1_legt",
    "theorem2_legs",
    "max_abs_difference",
    "rescale_symbolic",
    "legt_polynomial_residual",
    "window_coefficients",
]

#: The variable of the basis, ``s ∈ [-1, 1]``.
S = sp.Symbol("s", real=True)


def _size(N) -> int:
    return positive_int("N", N)


def _window(w) -> sp.Expr:
    w = sp.sympify(w)
    if w.is_positive is False or w.is_zero:
        raise ValueError(f"w must be positive, got {w}")
    return w


def orthonormal_legendre(n: int, s: sp.Symbol = S) -> sp.Expr:
    """``g_n(s) = √((2n+1)/2) P_n(s)``, orthonormal on ``[-1, 1]``; an exact polynomial in ``s``."""
    n = positive_int("n", n, minimum=0)
    if not isinstance(s, sp.Symbol):
        raise TypeError(f"s must be a sympy Symbol, got {type(s).__name__}")
    return sp.sqrt(sp.Rational(2 * n + 1, 2)) * sp.legendre(n, s)


# --------------------------------------------------------------------------- Legendre identities

def legendre_generating_identities() -> dict[str, tuple[sp.Expr, sp.Expr, bool]]:
    """The post's Legendre identities as identities of generating functions, for all n at once.

    With ``G(x, z) = (1 - 2xz + z²)^(-1/2) = Σ_n p_n(x) zⁿ``, each identity between the
    coefficients of ``zⁿ`` becomes one identity between functions of ``(x, z)``, which SymPy
    simplifies to zero. Keys:

    * ``"r1"``: ``p'_{n+1} - p'_{n-1} = (2n+1) p_n``  ↔  ``G_x/z - z G_x = 2z G_z + G``;
    * ``"r2"``: ``p'_{n+1} = (n+1) p_n + x p'_n``  ↔  ``G_x/z = G + z G_z + x G_x``;
    * ``"dot"``: ``p'_{n+1} = Σ_k (2k+1) χ_{n-k} p_k``  ↔  ``G_x/z = (2z G_z + G)/(1 - z²)``;
    * ``"dot_t1"``: ``(x+1) p'_n = -(n+1) p_n + Σ_{k<=n} (2k+1) p_k``
      ↔  ``(x+1) G_x = -(G + z G_z) + (2z G_z + G)/(1 - z)``;
    * ``"ends"``: ``p_n(1) = 1``, ``p_n(-1) = (-1)ⁿ``  ↔  ``G(±1, z)² = (1 ∓ z)⁻²`` (and
      ``G(±1, 0) = 1 > 0``, so ``G(±1, z) = 1/(1 ∓ z)`` for ``|z| < 1``).

    Returns:
        ``{key: (lhs, rhs, holds)}``, ``lhs``/``rhs`` in ``x, z``; ``holds`` is True when
        ``lhs - rhs`` simplifies to 0.
    """
    x, z = sp.symbols("x z")
    G = (1 - 2 * x * z + z ** 2) ** sp.Rational(-1, 2)
    Gx, Gz = sp.diff(G, x), sp.diff(G, z)
    odd = 2 * z * Gz + G  # Σ (2n+1) p_n zⁿ
    pairs = {
        "r1": (Gx / z - z * Gx, odd),
        "r2": (Gx / z, G + z * Gz + x * Gx),
        "dot": (Gx / z, odd / (1 - z ** 2)),
        "dot_t1": ((x + 1) * Gx, -(G + z * Gz) + odd / (1 - z)),
        "ends": (G.subs(x, 1) ** 2 + G.subs(x, -1) ** 2, 1 / (1 - z) ** 2 + 1 / (1 + z) ** 2),
    }
    out = {}
    for key, (lhs, rhs) in pairs.items():
        holds = sp.simplify(lhs - rhs) == 0
        if key == "ends":  # both squares separately, not just their sum
            holds = all(sp.simplify(G.subs(x, e) ** 2 - 1 / (1 - e * z) ** 2) == 0 for e in (1, -1))
            holds = holds and G.subs({x: 1, z: 0}) == 1 and G.subs({x: -1, z: 0}) == 1
        out[key] = (lhs, rhs, bool(holds))
    return out


def legendre_identities_upto(n_max: int) -> dict[str, bool]:
    """The same identities checked exactly, polynomial by polynomial, for ``n = 0 .. n_max``.

    (``"r1"`` needs ``p_{n-1}``, so it runs from ``n = 1``.) Returns ``{key: holds}``.
    """
    n_max = positive_int("n_max", n_max)
    x = sp.Symbol("x")
    p = [sp.legendre(n, x) for n in range(n_max + 2)]
    dp = [sp.diff(q, x) for q in p]
    chi = lambda m: 1 if m % 2 == 0 else 0
    zero = lambda e: sp.expand(e) == 0
    return {
        "r1": all(zero(dp[n + 1] - dp[n - 1] - (2 * n + 1) * p[n]) for n in range(1, n_max + 1)),
        "r2": all(zero(dp[n + 1] - (n + 1) * p[n] - x * dp[n]) for n in range(n_max + 1)),
        "dot": all(zero(dp[n + 1] - sum((2 * k + 1) * chi(n - k) * p[k] for k in range(n + 1)))
                   for n in range(n_max + 1)),
        "dot_t1": all(zero((x + 1) * dp[n] + (n + 1) * p[n] - sum((2 * k + 1) * p[k] for k in range(n + 1)))
                      for n in range(n_max + 1)),
        "ends": all(p[n].subs(x, 1) == 1 and p[n].subs(x, -1) == (-1) ** n for n in range(n_max + 1)),
    }


def legendre_identity_failures(n_max: int) -> dict[str, list[int]]:
    """Like :func:`legendre_identities_upto`, but the list of the ``n`` where each identity fails.

    An empty list means the identity holds exactly for ``n = 0 .. n_max`` (``"r1"`` from 1).
    """
    n_max = positive_int("n_max", n_max)
    x = sp.Symbol("x")
    p = [sp.legendre(n, x) for n in range(n_max + 2)]
    dp = [sp.diff(q, x) for q in p]
    chi = lambda m: 1 if m % 2 == 0 else 0
    residuals = {
        "r1": lambda n: dp[n + 1] - dp[n - 1] - (2 * n + 1) * p[n],
        "r2": lambda n: dp[n + 1] - (n + 1) * p[n] - x * dp[n],
        "dot": lambda n: dp[n + 1] - sum((2 * k + 1) * chi(n - k) * p[k] for k in range(n + 1)),
        "dot_t1": lambda n: (x + 1) * dp[n] + (n + 1) * p[n] - sum((2 * k + 1) * p[k] for k in range(n + 1)),
        "ends": lambda n: (p[n].subs(x, 1) - 1) ** 2 + (p[n].subs(x, -1) - (-1) ** n) ** 2,
    }
    return {key: [n for n in range(1 if key == "r1" else 0, n_max + 1) if sp.expand(f(n)) != 0]
            for key, f in residuals.items()}


# --------------------------------------------------------------------------- the framework

def reparametrization_residual(t_map: Callable[[sp.Symbol, sp.Symbol], sp.Expr] | None = None) -> sp.Expr:
    """Residual of the integration by parts behind post eq. hippo-base, for generic ``u`` and ``g``.

    The integrand of ``dc/dT`` is ``u'(t) ∂_T t · g``; the post rewrites it as
    ``d/ds[u(t) ρ g] - u(t) d/ds[ρ g]`` with ``ρ = ∂_T t / ∂_s t``. Integrating the first term
    gives the boundary term. Returns the difference of the two integrands, simplified (0 when
    the step holds); ``u`` and ``g`` are undefined functions, and so is the map ``t(s, T)``
    unless ``t_map`` is given.
    """
    s, T = sp.symbols("s T", real=True)
    u, g = sp.Function("u"), sp.Function("g")
    t = sp.Function("t")(s, T) if t_map is None else sp.sympify(t_map(s, T))
    rho = sp.diff(t, T) / sp.diff(t, s)
    before = sp.diff(u(t), T) * g(s)
    after = sp.diff(u(t) * rho * g(s), s) - u(t) * sp.diff(rho * g(s), s)
    return sp.simplify(before - after)


def _inner(p: sp.Expr, q: sp.Expr, s: sp.Symbol = S) -> sp.Expr:
    """``∫_{-1}^1 p q ds`` for polynomials in ``s`` (coefficients may hold other symbols), exactly."""
    antiderivative = sp.Poly(sp.expand(p * q), s).integrate()
    return sp.expand(antiderivative.eval(1) - antiderivative.eval(-1))


def _kappa(n: int) -> sp.Expr:
    """``κ_n = √((2n+1)/2)``, so that ``g_n = κ_n p_n``."""
    return sp.sqrt(sp.Rational(2 * n + 1, 2))


def legt_from_integrals(N: int, w=sp.Symbol("w", positive=True)) -> tuple[sp.Matrix, sp.Matrix]:
    """LegT's ``(A, B)`` in the post's convention, from the integrals of the framework.

    ``A_nk = -(2/w)(g_n(-1) g_k(-1) + ∫_{-1}^1 g_k g_n' ds)``, ``B_n = (2/w) g_n(1)``. The integrals
    are taken in rational arithmetic over ``p_n`` and multiplied by ``κ_n κ_k`` (``g_n = κ_n p_n``).

    Returns:
        ``A`` ``(N, N)`` and ``B`` ``(N, 1)`` SymPy matrices.
    """
    N, w = _size(N), _window(w)
    p = [sp.legendre(n, S) for n in range(N)]
    dp = [sp.diff(q, S) for q in p]
    A = sp.Matrix(N, N, lambda n, k: -(2 / w) * _kappa(int(n)) * _kappa(int(k))
                  * (p[int(n)].subs(S, -1) * p[int(k)].subs(S, -1) + _inner(p[int(k)], dp[int(n)])))
    B = sp.Matrix(N, 1, lambda n, _: (2 / w) * _kappa(int(n)) * p[int(n)].subs(S, 1))
    return A.applyfunc(sp.radsimp), B.applyfunc(sp.radsimp)


def legs_from_integrals(N: int) -> tuple[sp.Matrix, sp.Matrix]:
    """LegS's ``(A, B)`` in the post's convention: ``A_nk = -∫ g_k (g_n + (s+1) g_n') ds``, ``B_n = 2 g_n(1)``.

    Integrals over ``p_n`` in rational arithmetic, times ``κ_n κ_k``. Returns ``(N, N)`` and ``(N, 1)``.
    """
    N = _size(N)
    p = [sp.legendre(n, S) for n in range(N)]
    q = [p[n] + (S + 1) * sp.diff(p[n], S) for n in range(N)]
    A = sp.Matrix(N, N, lambda n, k: -_kappa(int(n)) * _kappa(int(k)) * _inner(p[int(k)], q[int(n)]))
    B = sp.Matrix(N, 1, lambda n, _: 2 * _kappa(int(n)) * p[int(n)].subs(S, 1))
    return A.applyfunc(sp.radsimp), B.applyfunc(sp.radsimp)


def legs_from_monomials(N: int) -> tuple[sp.Matrix, sp.Matrix]:
    """LegS's ``(A, B)`` solved from the signals ``u(t) = t^j``, ``j = 0 .. N``, without integrating by parts.

    For ``u = t^j`` the state is ``c_n(T) = α_nj T^j`` with ``α_nj = ∫ ((s+1)/2)^j g_n ds``, so
    ``T c_n' = A c + B u`` reads ``j α_nj = Σ_k A_nk α_kj + B_n`` for every ``j``: N + 1 linear
    equations for the N + 1 unknowns of row n, solved exactly (the solution is unique).

    Returns ``(N, N)`` and ``(N, 1)`` SymPy matrices.
    """
    N = _size(N)
    # solve in the basis p_n (rational arithmetic), then rescale exactly to g_n = κ_n p_n:
    # the state c^p_n = ∫ u p_n ds is c_n / κ_n, i.e. c = K c^p with K = diag(κ_n)
    p = [sp.legendre(n, S) for n in range(N)]
    alpha = sp.Matrix(N, N + 1, lambda n, j: _inner(((S + 1) / 2) ** j, p[int(n)]))
    # rows of M: j; unknowns (A_n0 .. A_n,N-1, B_n)
    M = sp.Matrix.hstack(alpha.T, sp.ones(N + 1, 1))
    if M.rank() != N + 1:
        raise ArithmeticError("the monomial equations do not determine (A, B)")  # pragma: no cover
    A, B = sp.zeros(N, N), sp.zeros(N, 1)
    for n in range(N):
        rhs = sp.Matrix([j * alpha[n, j] for j in range(N + 1)])
        sol = M.LUsolve(rhs)
        A[n, :], B[n, 0] = sol[:N, 0].T, sol[N, 0]
    return rescale_symbolic(A, B, [1 / _kappa(n) for n in range(N)])


def legt_polynomial_residual(N: int, degree: int, w=sp.Symbol("w", positive=True)) -> sp.Matrix:
    """``c'(T) - A c(T) - B u(T)`` for LegT (post convention) and a generic polynomial signal.

    ``u(t) = Σ_{j<=degree} a_j t^j`` with symbolic ``a_j``; ``c(T)`` is computed from the
    projection integrals. The residual vanishes when the truncation ``u(T-w) ≈ Σ c_k g_k(-1)``
    is exact, i.e. for ``degree < N``. Returns ``(N, 1)``, expanded.
    """
    N, w = _size(N), _window(w)
    degree = positive_int("degree", degree, minimum=0)
    T = sp.Symbol("T", real=True)
    a = sp.symbols(f"a0:{degree + 1}")
    u = lambda t: sum(a[j] * t ** j for j in range(degree + 1))
    c = window_coefficients(u((S + 1) * w / 2 + T - w), N)
    A, B = legt_closed_form(N, w)
    return (c.diff(T) - A * c - B * u(T)).applyfunc(sp.expand)


def window_coefficients(signal: sp.Expr, N: int) -> sp.Matrix:
    """``(∫_{-1}^1 signal(s) g_n(s) ds)_{n<N}`` for an expression in :data:`S`; ``(N, 1)``."""
    N = _size(N)
    signal = sp.sympify(signal)
    return sp.Matrix([_kappa(n) * _inner(signal, sp.legendre(n, S)) for n in range(N)])


# --------------------------------------------------------------------------- closed forms and rescaling

def _sign(n: int) -> int:
    return 1 if n % 2 == 0 else -1


def legt_closed_form(N: int, w=sp.Symbol("w", positive=True)) -> tuple[sp.Matrix, sp.Matrix]:
    """Post eq. leg-t-hippo-1: ``A_nk = -(1/w)√((2n+1)(2k+1)) · (1 if k<n else (-1)^(n-k))``, ``B_n = √(2(2n+1))/w``."""
    N, w = _size(N), _window(w)
    A = sp.Matrix(N, N, lambda n, k: -sp.sqrt((2 * n + 1) * (2 * k + 1)) / w * (1 if k < n else _sign(n - k)))
    B = sp.Matrix(N, 1, lambda n, _: sp.sqrt(2 * (2 * n + 1)) / w)
    return A, B


def legs_closed_form(N: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Post eq. leg-s-hippo: ``A_nk = -√((2n+1)(2k+1))`` (k<n), ``-(n+1)`` (k=n), 0 (k>n); ``B_n = √(2(2n+1))``."""
    N = _size(N)
    A = sp.Matrix(N, N, lambda n, k: -sp.sqrt((2 * n + 1) * (2 * k + 1)) if k < n else (-(n + 1) if k == n else 0))
    B = sp.Matrix(N, 1, lambda n, _: sp.sqrt(2 * (2 * n + 1)))
    return A, B


def post_lmu_closed_form(N: int, w=sp.Symbol("w", positive=True)) -> tuple[sp.Matrix, sp.Matrix]:
    """Post eq. leg-t-hippo-2 as printed: ``A_nk = -((2n+1)/w)(1 if k<n else (-1)^(n-k))``, ``B_n = (2n+1)/w``."""
    N, w = _size(N), _window(w)
    A = sp.Matrix(N, N, lambda n, k: -sp.Integer(2 * n + 1) / w * (1 if k < n else _sign(n - k)))
    B = sp.Matrix(N, 1, lambda n, _: sp.Integer(2 * n + 1) / w)
    return A, B


def lmu_closed_form(N: int, theta=sp.Symbol("theta", positive=True)) -> tuple[sp.Matrix, sp.Matrix]:
    """Voelker et al. (2019): ``A_ij = ((2i+1)/θ)(-1 if i<j else (-1)^(i-j+1))``, ``B_i = (2i+1)(-1)^i/θ``."""
    N, theta = _size(N), _window(theta)
    A = sp.Matrix(N, N, lambda i, j: sp.Integer(2 * i + 1) / theta * (-1 if i < j else _sign(i - j + 1)))
    B = sp.Matrix(N, 1, lambda i, _: sp.Integer(2 * i + 1) * _sign(i) / theta)
    return A, B


def post_legs_unit_closed_form(N: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Post eq. leg-s-hippo-2 (LegS with λ_n = √(2/(2n+1))): ``A_nk = -(2n+1)`` (k<n), ``-(n+1)`` (k=n), 0 (k>n); ``B_n = 2n+1``."""
    N = _size(N)
    A = sp.Matrix(N, N, lambda n, k: -sp.Integer(2 * n + 1) if k < n else (-sp.Integer(n + 1) if k == n else 0))
    B = sp.Matrix(N, 1, lambda n, _: sp.Integer(2 * n + 1))
    return A, B


def theorem1_legt(N: int, theta=sp.Symbol("theta", positive=True)) -> tuple[sp.Matrix, sp.Matrix]:
    """LegT as printed in Theorem 1, eq. (1), of the HiPPO paper (Gu, Dao et al. 2020, arXiv 2008.07669).

    The paper writes the dynamics with a minus sign, ``c' = -A c + B f``, with
    ``A_nk = (1/θ)(2n+1)·((-1)^(n-k) if n >= k else 1)`` and ``B_n = (1/θ)(2n+1)(-1)^n`` (the LMU's form).
    ``-A``, ``B`` at ``θ = 1`` equal the authors' code ``transition('lmu', N)`` (HazyResearch/hippo-code,
    state-spaces/s4), which ``tests/test_ssm_hippo.py`` asserts against the s4 fixture.

    Returns:
        ``(A, B)`` with ``A`` ``(N, N)`` and ``B`` ``(N, 1)``, the paper's sign convention kept (negate ``A``
        to compare with ``c' = A c + B u``).
    """
    N, theta = _size(N), _window(theta)
    A = sp.Matrix(N, N, lambda n, k: sp.Integer(2 * n + 1) / theta * (_sign(n - k) if n >= k else 1))
    B = sp.Matrix(N, 1, lambda n, _: sp.Integer(2 * n + 1) * _sign(n) / theta)
    return A, B


def theorem2_legs(N: int) -> tuple[sp.Matrix, sp.Matrix]:
    """LegS as printed in Theorem 2, eq. (3), of the HiPPO paper (continuous form; eq. (4) discretizes it).

    The paper writes ``c' = -(1/t) A c + (1/t) B f`` with ``A_nk = √((2n+1)(2k+1))`` (n > k), ``n+1``
    (n = k), 0 (n < k), and ``B_n = √(2n+1)``. ``-A``, ``B`` equal the authors' ``transition('legs', N)``
    (asserted against the s4 fixture in ``tests/test_ssm_hippo.py``).

    Returns:
        ``(A, B)`` with ``A`` ``(N, N)`` and ``B`` ``(N, 1)``, the paper's sign convention kept.
    """
    N = _size(N)
    A = sp.Matrix(N, N, lambda n, k: sp.sqrt((2 * n + 1) * (2 * k + 1)) if n > k else (n + 1 if n == k else 0))
    B = sp.Matrix(N, 1, lambda n, _: sp.sqrt(2 * n + 1))
    return A, B


def max_abs_difference(X: sp.Matrix, Y: sp.Matrix, subs: dict | None = None) -> sp.Expr:
    """``max |X_ij - Y_ij|`` over the entries, exact: each difference is simplified first.

    ``subs`` (e.g. ``{w: 1}``) is applied to the differences before taking absolute values, for
    matrices that hold symbols. Returns an exact SymPy number (``0`` when the matrices agree).
    """
    if not isinstance(X, sp.MatrixBase) or not isinstance(Y, sp.MatrixBase):
        raise TypeError("X and Y must be sympy matrices")
    if X.shape != Y.shape:
        raise ValueError(f"X and Y must have the same shape, got {X.shape} and {Y.shape}")
    diffs = [sp.simplify(e) for e in (X - Y)]
    if subs:
        diffs = [sp.simplify(e.subs(subs)) for e in diffs]
    if any(e.free_symbols for e in diffs):
        raise ValueError("the differences still hold symbols; give their values in subs")
    return max((sp.Abs(e) for e in diffs), key=lambda e: float(e), default=sp.Integer(0))


def rescale_symbolic(A: sp.Matrix, B: sp.Matrix, lam: Sequence[sp.Expr]) -> tuple[sp.Matrix, sp.Matrix]:
    """The system of ``c̃`` where ``c_n = λ_n c̃_n``: ``(Λ⁻¹ A Λ, Λ⁻¹ B)``, exact (cf. :func:`sulib.ssm.rescale`).

    Args:
        A: ``(N, N)``; B: ``(N, 1)``; lam: N nonzero expressions.
    """
    if not isinstance(A, sp.MatrixBase) or not isinstance(B, sp.MatrixBase):
        raise TypeError("A and B must be sympy matrices")
    N = A.shape[0]
    if A.shape != (N, N) or B.shape != (N, 1):
        raise ValueError(f"A must be (N, N) and B (N, 1), got {A.shape} and {B.shape}")
    lam = [sp.sympify(v) for v in lam]
    if len(lam) != N:
        raise ValueError(f"lam must have {N} entries to match A, got {len(lam)}")
    if any(v == 0 for v in lam):
        raise ValueError("lam must be nonzero everywhere")
    L = sp.diag(*lam)
    return (L.inv() * A * L).applyfunc(sp.radsimp), (L.inv() * B).applyfunc(sp.radsimp)
