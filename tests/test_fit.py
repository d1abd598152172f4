"""sulib.fit: power-law fits recover known exponents; bad input is refused by name."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sulib.fit import power_law_fit


@settings(deadline=None, max_examples=50)
@given(st.floats(-3, 3), st.floats(0.01, 100), st.integers(3, 30))
def test_exact_power_law_is_recovered(exponent, prefactor, n):
    x = np.geomspace(1, 1e4, n)
    fit = power_law_fit(x, prefactor * x**exponent)
    assert fit.exponent == pytest.approx(exponent, abs=1e-9)
    assert fit.prefactor == pytest.approx(prefactor, rel=1e-9)
    assert fit.stderr < 1e-9


def test_stderr_matches_numpy_polyfit_covariance():
    rng = np.random.default_rng(0)
    x = np.geomspace(1, 1e3, 12)
    y = 2 * x**-0.5 * np.exp(0.1 * rng.standard_normal(x.size))
    fit = power_law_fit(x, y)
    coef, cov = np.polyfit(np.log(x), np.log(y), 1, cov="unscaled")
    resid = np.log(y) - np.polyval(coef, np.log(x))
    assert fit.exponent == pytest.approx(coef[0], rel=1e-12)
    assert fit.stderr == pytest.approx(np.sqrt(cov[0, 0] * resid @ resid / (x.size - 2)), rel=1e-10)


def test_two_points_have_no_stderr():
    fit = power_law_fit([1, 10], [1, 100])
    assert fit.exponent == pytest.approx(2)
    assert np.isnan(fit.stderr)


@pytest.mark.parametrize("x, y, match", [
    ([1, 2, 3], [1, 2], "y must have the shape"),
    ([[1, 2]], [[1, 2]], "x must be one-dimensional"),
    ([1], [1], "at least 2 points"),
    ([1, 0, 2], [1, 1, 1], "must be > 0"),
    ([1, 2, 3], [1, -1, 1], "must be > 0"),
    ([2, 2, 2], [1, 2, 3], "two distinct"),
    ([1, np.nan], [1, 2], "x contains non-finite"),
    ([1, 2], [1, np.inf], "y contains non-finite"),
])
def test_bad_input_names_the_argument(x, y, match):
    with pytest.raises(ValueError, match=match):
        power_law_fit(x, y)


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="x must"):
        power_law_fit(["a", "b"], [1, 2])
