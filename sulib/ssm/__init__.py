"""Linear state-space models of the HiPPO family: the HiPPO matrices, their discretizations,
the recurrences that run them, and the projections their states stand for.

A HiPPO system remembers a scalar signal ``u`` as the coefficients ``x`` of its projection
onto a fixed basis over a memory window. Two families:

* time-invariant (``"legt"``, ``"lmu"``, ``"fourier_legt"``, ``"fourier"``):
  ``x'(t) = A x(t) + B u(t)``,
  window ``[t - θ, t]`` (a sliding window of length θ);
* scale-invariant (``"legs"``, ``"fourier_legs"``): ``x'(t) = (A x(t) + B u(t)) / t``,
  window ``[0, t]`` (the whole history, stretched).

Shapes:
    ``A`` ``(N, N)`` and ``B`` ``(N,)``: one continuous system; ``N`` is the state size
    (``2M + 1`` for a Fourier kind of order ``M``).
    ``Abar`` ``(N, N)``, ``Bbar`` ``(N,)``: a discrete system ``x_{k+1} = Abar x_k + Bbar u_k``;
    ``Abars`` ``(L, N, N)``, ``Bbars`` ``(L, N)``: a time-varying one (step ``k`` uses ``[k]``).
    ``u`` ``(..., L)``: ``L`` input samples per signal, any leading batch shape.
    states ``(..., L, N)``: ``states[..., k, :] = x_{k+1}``, the state after ``u_0 .. u_k`` have
    been read. The initial state ``x_0`` is an argument (zero by default) and is not returned,
    so ``states[..., -1, :]`` is the final state and ``len(states) == len(u)``.

Window position and bases. A time ``τ`` in the window is written ``r ∈ [0, 1]``:
``r = (τ - (t - θ)) / θ`` for the time-invariant kinds and ``r = τ / t`` for the scale-invariant
ones; ``r = 0`` is the oldest remembered instant, ``r = 1`` is now. The Legendre kinds use the
shifted Legendre polynomials ``φ_n(r) = √(2n+1) P_n(2r - 1)``, orthonormal on ``[0, 1]``.

Normalizations of the Legendre states (``normalization=`` of :func:`hippo`):
    ``"hippo"`` (default; the HiPPO paper, arXiv 2008.07669, and state-spaces/s4):
        ``x_n = ∫_0^1 u(r) φ_n(r) dr``, ``u ≈ Σ x_n φ_n(r)``; ``B_n = √(2n+1) / θ``.
    ``"post"`` (kexue.fm/archives/10114): orthonormal on ``s = 2r - 1 ∈ [-1, 1]``,
        ``g_n(s) = √((2n+1)/2) P_n(s)``, ``c_n = ∫_{-1}^1 u g_n ds = √2 x_n``. Same ``A``,
        ``B_n = √(2(2n+1)) / θ``. (The post's rescaling λ_n = √2 turns its state into ours.)
    ``"lmu"`` is its own kind (Voelker et al. 2019): ``m_n = (2n+1) ∫_0^1 u P_n(1 - 2r) dr``,
        i.e. ``m_n = (-1)^n √(2n+1) x_n``: Legendre polynomials of the *delay* ``1 - r``,
        unnormalized. ``hippo("lmu") == rescale(*hippo("legt"), lam)`` with
        ``lam_n = (-1)^n / √(2n+1)``.
    Any rescaling ``x = Λ x̃`` (post 10114's λ_n) gives ``(Λ⁻¹ A Λ, Λ⁻¹ B)``: :func:`rescale`.
    Post 10114's "LMU" form (eq. leg-t-hippo-2) is the LMU system with the signs ``(-1)^n`` of
    the state flipped (Legendre in ``r`` instead of the delay); and its printed
    ``λ_n = 2/√(2n+1)`` gives ``B_n = (2n+1)/(√2 w)``, not the printed ``(2n+1)/w``, which needs
    ``λ_n = √(2/(2n+1))`` (the value its LegS section uses).

state-spaces/s4's ``transition(measure, N)`` (src/models/hippo/hippo.py): its ``"legs"`` is
``hippo("legs", N)`` and its ``"lmu"`` is ``hippo("lmu", N)``; its ``"legt"`` is halved
("for timescale correctness"), which is ``hippo("legt", N, theta=2.0)``: a window of length 2.
Its ``"fourier_decay"`` is :func:`fourier_to_real` of ``hippo("fourier_legt", N/2 - 1,
theta=2.0)`` (plus an always-zero state and a sign convention on the sines), and its
``"fourier"`` is, in the same way, ``hippo("fourier", N/2 - 1, theta=2.0)``: the corrected
closure of post 10114's Fourier system (see :func:`hippo`), for a window of length 2. The tests
check all of this against a fixture computed from s4's code.

Everything returned by a jitted kernel is float64 (complex128 for complex systems) when JAX's
x64 mode is on, float32 otherwise; :func:`hippo`, :func:`rescale` and :func:`fourier_to_real`
build their matrices with NumPy and always return float64 / complex128.

Convolution kernels ``K_j = C^* Abar^j Bbar`` of a time-invariant system (by powers, diagonal,
S4's DPLR route, the rational transfer function) and the FFT convolution that applies them are in
:mod:`sulib.ssm.kernels`; why S4 avoids diagonalizing LegS in :mod:`sulib.ssm.dplr_analysis`; the
rational transfer function's stability test in :mod:`sulib.ssm.stability`; nonlinear recurrences
solved in parallel by fixed-point/Newton sweeps (DEER) in :mod:`sulib.ssm.deer`.
"""

from __future__ import annotations

from sulib.ssm.hippo import (  # noqa: F401
    HIPPO_KINDS,
    SCALE_INVARIANT_KINDS,
    NORMALIZATIONS,
    fourier_frequencies,
    hippo,
    rescale,
    fourier_to_real,
)
from sulib.ssm.discretize import (  # noqa: F401
    DISCRETIZATIONS,
    LEGS_METHODS,
    discretize,
    legs_step_matrices,
)
from sulib.ssm.scan import (  # noqa: F401
    scan_sequential,
    scan_parallel,
    scan_varying,
)
from sulib.ssm.legs import (  # noqa: F401
    legs_matvec,
    legs_solve,
    legs_scan,
)
from sulib.ssm.projection import (  # noqa: F401
    legendre_basis,
    hippo_basis,
    reconstruct,
    project,
    project_steps,
)
from sulib.ssm.reference import (  # noqa: F401
    solve_held,
)
from sulib.ssm.kernels import (  # noqa: F401
    DIAGONAL_DISCRETIZATIONS,
    kernel_powers,
    kernel_diagonal,
    kernel_dplr,
    kernel_rational,
    truncated_output,
    legs_dplr,
    rational_realization,
    transfer_function,
    fft_conv,
)
from sulib.ssm.dplr_analysis import (  # noqa: F401
    legs_eigenvectors,
    legs_eigvec_sums,
    legs_eigvec_cond,
    legs_kernel_exact,
    dplr_bilinear,
)
from sulib.ssm.stability import (  # noqa: F401
    reflection_coefficients,
    step_up,
    schur_cohn_stable,
    reflection_coefficients_exact,
    legs_transfer_exact,
)
from sulib.ssm.deer import (  # noqa: F401
    deer_solve,
    deer_sweep,
    DeerResult,
    rnn_sequential,
    sweep_flops,
)
from sulib.ssm.flops import (  # noqa: F401
    jaxpr_flops,
)

__all__ = [
    "HIPPO_KINDS",
    "SCALE_INVARIANT_KINDS",
    "NORMALIZATIONS",
    "DISCRETIZATIONS",
    "LEGS_METHODS",
    "hippo",
    "rescale",
    "fourier_frequencies",
    "fourier_to_real",
    "discretize",
    "legs_step_matrices",
    "scan_sequential",
    "scan_parallel",
    "scan_varying",
    "legs_scan",
    "legs_matvec",
    "legs_solve",
    "legendre_basis",
    "hippo_basis",
    "reconstruct",
    "project",
    "project_steps",
    "solve_held",
    "jaxpr_flops",
    "DIAGONAL_DISCRETIZATIONS",
    "kernel_powers",
    "kernel_diagonal",
    "kernel_dplr",
    "kernel_rational",
    "truncated_output",
    "legs_dplr",
    "rational_realization",
    "transfer_function",
    "fft_conv",
    "legs_eigenvectors",
    "legs_eigvec_sums",
    "legs_eigvec_cond",
    "legs_kernel_exact",
    "dplr_bilinear",
    "reflection_coefficients",
    "step_up",
    "schur_cohn_stable",
    "reflection_coefficients_exact",
    "legs_transfer_exact",
    "deer_solve",
    "deer_sweep",
    "DeerResult",
    "rnn_sequential",
    "sweep_flops",
]
