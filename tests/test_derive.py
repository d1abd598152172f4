import pytest
import sympy as sp

from sulib.derive import Chain, StepError

x, y = sp.symbols("x y", positive=True)
n = sp.Symbol("n", integer=True, positive=True)
i = sp.Symbol("i", integer=True, positive=True)
a = sp.IndexedBase("a", positive=True)


def test_true_chain_is_accepted_and_rendered():
    chain = Chain(sp.Symbol("E"), (x + y) ** 2, "definition").eq(x**2 + 2 * x * y + y**2, "expand")
    latex = chain.latex()
    assert latex.startswith(r"\begin{aligned}") and r"\text{(expand)}" in latex
    assert "0x" not in repr(chain)  # deterministic text output for nbval


def test_false_step_raises_with_the_residual():
    chain = Chain(sp.Symbol("E"), (x + y) ** 2, "definition")
    with pytest.raises(StepError) as info:
        chain.eq(x**2 + y**2, "forgot the cross term")
    message = str(info.value)
    assert "forgot the cross term" in message and "2*x*y" in message
    assert len(chain.steps) == 1  # the wrong line was not added


def test_approximation_must_name_exactly_what_it_drops():
    chain = Chain(sp.Symbol("f"), sp.log(1 + x), "definition")
    chain.approx(x, "first order", dropped=sp.log(1 + x) - x)
    with pytest.raises(StepError):
        Chain(sp.Symbol("f"), sp.log(1 + x), "definition").approx(x, "wrong", dropped=x**2 / 2)


def test_definitions_are_substituted_before_checking():
    total = sp.Symbol("T", positive=True)
    chain = Chain(total, x * y, definitions={total: x * y})
    chain.eq(y * x, "commute")
    with pytest.raises(StepError):
        chain.eq(x + y, "wrong")


def test_sums_fall_back_to_exact_checks_for_small_n():
    # sum_{i<=n} (a_i + 1) = sum a_i + n holds for all n; the chain must accept it.
    chain = Chain(sp.Symbol("S"), sp.Sum(a[i] + 1, (i, 1, n)), check_n=(n, range(1, 6)))
    chain.eq(sp.Sum(a[i], (i, 1, n)) + n, "split the sum")
    assert chain.steps[-1].checked in ("all n", "n = 1…5")
    with pytest.raises(StepError):
        chain.eq(sp.Sum(a[i], (i, 1, n)) + n + 1, "off by one")


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="check_n"):
        Chain(sp.Symbol("S"), x, check_n=(n, []))
    with pytest.raises(TypeError, match="Lambda"):
        Chain(sp.Symbol("S"), x, definitions={a: x})


def test_general_sum_identity_names_its_bound():
    # "all T", not "all n": the reason names the symbol the identity was proven for.
    T, t = sp.symbols("T t", integer=True, positive=True)
    chain = Chain(sp.Symbol("S"), sp.Sum(2 * t, (t, 1, T))).eq(T * (T + 1), "Gauss")
    assert chain.steps[-1].checked == "all T"
