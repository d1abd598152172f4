"""sulib's S4 kernel against The Annotated S4's ``kernel_DPLR`` (fixture: tests/data/annotated_s4_kernel.npz,
made by tests/data/make_annotated_s4_fixture.py; see tests/data/README.md).

Conventions mapped: both evaluate the truncated generating function at ``z_l = exp(-2πi l/L)``, both
conjugate the output vector (``Σ conj(C̃_n) …``) and both take C̃ (the learned vector) as input
(``kernel_dplr(..., c_tilde=True)``); ``kernel_DPLR`` returns the real part of the kernel, sulib the
complex kernel. ``discrete_DPLR`` returns a row vector ``Cb`` used without conjugation
(``y = Cb x``): sulib's ``C`` is ``conj(Cb)``.
"""

from pathlib import Path

import jax
import numpy as np
import pytest

from sulib.ssm import hippo, kernel_dplr, kernel_powers, legs_dplr, truncated_output
from sulib.ssm.dplr_analysis import dplr_bilinear

jax.config.update("jax_enable_x64", True)

FIXTURE = Path(__file__).parent / "data" / "annotated_s4_kernel.npz"
TOL = 1e-12  # relative to max |K|; float64 rounding of N = 64 Cauchy sums is ~1e-15


@pytest.fixture(scope="module")
def ann():
    return np.load(FIXTURE)


def rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max()


def test_fixture_records_its_source(ann):
    assert str(ann["commit"]) == "f19e2464990f0c07943bb922894d6f2af65c9bd9"
    assert str(ann["source"]) == "s4/s4.py"


def test_make_hippo_is_hippo_legs(ann):
    A, B = hippo("legs", 64)
    assert np.abs(ann["legs_A"] - A).max() < 1e-12 * np.abs(A).max()
    assert np.abs(ann["nplr_B"] - B).max() == 0
    assert np.allclose(ann["nplr_P"], np.sqrt(np.arange(64) + 0.5), rtol=0, atol=1e-15)


def test_make_dplr_hippo_is_legs_dplr_up_to_order_and_phases(ann):
    Lam, P, B, V = legs_dplr(64)
    Lam_a, P_a, B_a, V_a = (ann[k] for k in ("legs_Lambda", "legs_P", "legs_B", "legs_V"))
    assert np.abs(np.sort_complex(Lam_a) - np.sort_complex(Lam)).max() < 1e-11
    assert np.abs(V_a.conj().T @ V_a - np.eye(64)).max() < 1e-13
    A, B_legs = hippo("legs", 64)
    A_a = V_a @ (np.diag(Lam_a) - np.outer(P_a, P_a.conj())) @ V_a.conj().T
    assert np.abs(A_a - A).max() < 1e-11 and np.abs(V_a @ B_a - B_legs).max() < 1e-12
    # |P| and |B| per eigenvalue do not depend on the eigenvectors' phases
    order_a, order = np.argsort(Lam_a.imag), np.argsort(Lam.imag)
    assert np.allclose(np.abs(P_a[order_a]), np.abs(P[order]), atol=1e-10)
    assert np.allclose(np.abs(B_a[order_a]), np.abs(B[order]), atol=1e-10)


@pytest.mark.parametrize("i", range(4))
def test_kernel_dplr_matches_on_legs(ann, i):
    step, L = float(ann["legs_steps"][i]), int(ann["legs_Ls"][i])
    K = kernel_dplr(ann["legs_Lambda"], ann["legs_P"], ann["legs_P"], ann["legs_B"], ann["legs_Ct"],
                    step, L, c_tilde=True)
    assert rel(np.asarray(K).real, ann[f"legs_K_{i}"]) < TOL


def test_the_conjugation_convention_matters(ann):
    # with conj(C̃) in place of C̃ the kernels disagree: the match above is not an accident
    step, L = float(ann["legs_steps"][0]), int(ann["legs_Ls"][0])
    K = kernel_dplr(ann["legs_Lambda"], ann["legs_P"], ann["legs_P"], ann["legs_B"],
                    ann["legs_Ct"].conj(), step, L, c_tilde=True)
    assert rel(np.asarray(K).real, ann["legs_K_0"]) > 0.1


@pytest.mark.parametrize("i", range(2))
def test_kernel_dplr_matches_on_a_random_system(ann, i):
    step, L = float(ann["rand_steps"][i]), int(ann["rand_Ls"][i])
    K = kernel_dplr(ann["rand_Lambda"], ann["rand_P"], ann["rand_Q"], ann["rand_B"], ann["rand_Ct"],
                    step, L, c_tilde=True)
    assert rel(np.asarray(K).real, ann[f"rand_K_{i}"]) < TOL


def test_discrete_dplr_is_the_two_factor_bilinear_rule(ann):
    step, L = float(ann["rnn_step"]), int(ann["rnn_L"])
    Abar, Bbar = dplr_bilinear(ann["legs_Lambda"], ann["legs_P"], ann["legs_P"], ann["legs_B"], step)
    assert rel(Abar, ann["rnn_Ab"]) < TOL and rel(Bbar, ann["rnn_Bb"][:, 0]) < TOL
    # their C is recovered from C̃ = (I - Ā^L)^* C; map it back and compare
    Ct = truncated_output(np.asarray(Abar), ann["rnn_Cb"][0].conj(), L)
    assert rel(Ct, ann["legs_Ct"]) < 1e-10


def test_k_conv_is_kernel_powers_with_conjugated_c(ann):
    K = kernel_powers(ann["rnn_Ab"], ann["rnn_Bb"][:, 0], ann["rnn_Cb"][0].conj(), ann["rnn_Kconv"].size)
    assert rel(K, ann["rnn_Kconv"]) < TOL
    # and K_conv is their kernel_DPLR (same C̃, step and L) up to its real part
    assert rel(ann["rnn_Kconv"].real, ann["legs_K_0"][: ann["rnn_Kconv"].size]) < 1e-12


def test_k_conv_is_sulibs_complex_s4_kernel(ann):
    # their recurrent route (powers of discrete_DPLR's Ā) against sulib's Cauchy route, complex:
    # the fixture's C̃ is complex, so the imaginary part is a check of its own
    step, L = float(ann["legs_steps"][0]), int(ann["legs_Ls"][0])
    assert (step, L) == (float(ann["rnn_step"]), int(ann["rnn_L"]))
    K = np.asarray(kernel_dplr(ann["legs_Lambda"], ann["legs_P"], ann["legs_P"], ann["legs_B"],
                               ann["legs_Ct"], step, L, c_tilde=True))
    K_conv = ann["rnn_Kconv"]
    assert np.abs(K_conv.imag).max() > 0.1 * np.abs(K_conv).max()
    assert rel(K[: K_conv.size], K_conv) < TOL
