"""The recurrences of sulib.ssm.scan against a NumPy loop."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sulib.ssm import (
    discretize,
    hippo,
    scan_parallel,
    scan_sequential,
    scan_varying,
)
from ssm_helpers import finite, numpy_scan, stable_matrix

# ----------------------------------------------------------------- recurrences


@st.composite
def discrete_systems(draw):
    N = draw(st.sampled_from([1, 4]))
    L = draw(st.sampled_from([1, 33]))
    batch = draw(st.sampled_from([(), (2,)]))
    radius = draw(st.floats(0.0, 0.98))
    seed = draw(st.integers(0, 2**32 - 1))
    u = draw(arrays(np.float64, batch + (L,), elements=finite))
    x0 = draw(arrays(np.float64, (N,), elements=finite))
    rng = np.random.default_rng(seed)
    return stable_matrix(rng, N, radius), rng.normal(size=N), u, x0


@settings(max_examples=30, deadline=None)
@given(discrete_systems())
def test_sequential_and_parallel_scans_agree_with_a_numpy_loop(system):
    Abar, Bbar, u, x0 = system
    expected = numpy_scan(Abar, Bbar, u, x0)
    scale = 1 + np.abs(expected).max()
    seq = scan_sequential(Abar, Bbar, u, x0=x0)
    par = scan_parallel(Abar, Bbar, u, x0=x0)
    assert seq.shape == par.shape == u.shape + (len(Bbar),)
    np.testing.assert_allclose(seq, expected, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(par, expected, rtol=0, atol=1e-11 * scale)


def test_scans_of_complex_and_hippo_systems():
    rng = np.random.default_rng(0)
    Abar = stable_matrix(rng, 5, 0.97, complex_=True)
    Bbar = rng.normal(size=5) + 1j * rng.normal(size=5)
    u = rng.normal(size=(3, 100))
    expected = numpy_scan(Abar, Bbar, u, 0.0)
    np.testing.assert_allclose(scan_sequential(Abar, Bbar, u), expected, atol=1e-12)
    np.testing.assert_allclose(scan_parallel(Abar, Bbar, u), expected, atol=1e-11)
    Abar, Bbar = discretize(*hippo("legt", 16), 1e-3, "bilinear")  # non-normal, |eig| close to 1
    u = np.sin(np.linspace(0, 20, 300))
    expected = numpy_scan(Abar, Bbar, u, 0.0)
    np.testing.assert_allclose(scan_parallel(Abar, Bbar, u), expected, atol=1e-11 * np.abs(expected).max())


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([1, 3]), st.sampled_from([1, 9]), st.sampled_from([(), (2,)]),
       st.integers(0, 2**32 - 1), st.booleans())
def test_time_varying_scans_agree_with_a_numpy_loop(N, L, batch, seed, with_x0):
    rng = np.random.default_rng(seed)
    Abars = rng.normal(size=(L, N, N)) / np.sqrt(N)
    Bbars = rng.normal(size=(L, N))
    u = rng.normal(size=batch + (L,))
    x0 = rng.normal(size=N) if with_x0 else None
    expected = numpy_scan(Abars, Bbars, u, 0.0 if x0 is None else x0)
    scale = 1 + np.abs(expected).max()
    np.testing.assert_allclose(scan_varying(Abars, Bbars, u, x0=x0), expected, atol=1e-12 * scale)
    np.testing.assert_allclose(scan_varying(Abars, Bbars, u, x0=x0, parallel=True), expected, atol=1e-11 * scale)
