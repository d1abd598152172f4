"""sulib.report (tables, verdicts) and sulib.plotting (the figure style and its label check)."""

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import matplotlib.pyplot as plt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sulib.plotting import BOOK_STYLE, OKABE_ITO, finish, use_book_style
from sulib.report import (STATUSES, Claim, Table, Verdict, measured_problem, noise_bound,
                          parse_verdict_html)


def claim(k=1, **kw):
    fields = dict(id=f"C{k}", claim="x = y", check="SymPy", measured="0", status="verified", section="sec-a")
    return Claim(**{**fields, **kw})


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip)


@given(st.lists(st.tuples(text, text, text, st.sampled_from(STATUSES)), min_size=1, max_size=5))
def test_verdict_html_round_trips_any_text(rows):
    claims = [Claim(f"C{k + 1}", a, b, c if measured_problem(c) is None else "1", s, "sec-a")
              for k, (a, b, c, s) in enumerate(rows)]
    v = Verdict("kexue9034", claims)
    assert parse_verdict_html(v._repr_html_()) == v.to_json()


def test_verdict_html_cannot_be_broken_out_of():
    v = Verdict("kexue9034", [claim(claim="</script><b>x</b>")])
    html = v._repr_html_()
    assert html.count("</script>") == 1 and parse_verdict_html(html)["claims"][0]["claim"] == "</script><b>x</b>"


@pytest.mark.parametrize("kwargs, match", [
    (dict(status="probably"), "status"),
    (dict(id="C2"), "id"),
    (dict(section="Has Spaces"), "section"),
    (dict(measured="  "), "measured"),
    (dict(measured="within 1e-12: True"), "True/False"),
    (dict(measured="False for n = 3"), "True/False"),
    (dict(measured="exact"), "no number"),
])
def test_verdict_refuses_malformed_claims(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Verdict("kexue9034", [claim(**kwargs)])


@pytest.mark.parametrize("measured", ["max residual 3.2e-15 (tolerance 1e-12)", "order 1.98 ± 0.02",
                                      "Trueness 0.5", "0 of 64 cases differ"])
def test_verdict_accepts_measured_numbers(measured):
    assert Verdict("kexue9034", [claim(measured=measured)]).claims[0].measured == measured


def test_verdict_refuses_bad_post_and_no_claims():
    with pytest.raises(ValueError, match="post"):
        Verdict("https://kexue.fm/archives/9034", [claim()])
    with pytest.raises(ValueError, match="claims"):
        Verdict("kexue9034", [])


def test_parse_refuses_html_without_a_verdict():
    with pytest.raises(ValueError, match="found 0"):
        parse_verdict_html(Table(["a"], [["1"]])._repr_html_())


def test_verdict_text_is_deterministic():
    v = Verdict("kexue9034", [claim(), claim(2, status="refuted")])
    assert repr(v) == repr(Verdict("kexue9034", [claim(), claim(2, status="refuted")]))
    assert "0x" not in repr(v) and "refuted" in repr(v)


def test_book_style_is_applied_and_colour_blind_safe():
    use_book_style()
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"] == list(OKABE_ITO)
    assert matplotlib.rcParams["figure.facecolor"] == BOOK_STYLE["figure.facecolor"] == "white"


def test_finish_refuses_unlabelled_axes():
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ax.set_xlabel("n")
    with pytest.raises(ValueError, match="no y label"):
        finish(fig)
    ax.set_ylabel("H (nats)")
    finish(fig)
    plt.close(fig)


def test_finish_accepts_shared_outer_labels_and_labelled_colourbars():
    fig, axes = plt.subplots(2, 2, sharex=True, sharey=True)
    for ax in axes[-1]:
        ax.set_xlabel("n")
    for ax in axes[:, 0]:
        ax.set_ylabel("H (nats)")
    image = axes[0, 0].imshow([[0, 1], [1, 0]])
    bar = fig.colorbar(image, ax=axes[0, 0])
    with pytest.raises(ValueError, match="colour bar"):
        finish(fig)
    bar.set_label("weight")
    finish(fig)
    plt.close(fig)


def test_finish_refuses_non_figures():
    with pytest.raises(TypeError, match="fig"):
        finish("figure")


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_noise_bound_is_the_next_power_of_ten(x):
    bound = float(noise_bound(x).removeprefix("< "))
    assert x < bound <= 10 * x * (1 + 1e-12)


@pytest.mark.parametrize("x, text", [(0.0, "= 0"), (2.2e-16, "< 1e-15"), (1e-12, "< 1e-11"), (0.3, "< 1e0")])
def test_noise_bound_examples(x, text):
    assert noise_bound(x) == text


@pytest.mark.parametrize("x", [-1e-16, float("nan"), float("inf")])
def test_noise_bound_refuses_non_residuals(x):
    with pytest.raises(ValueError, match="x must be"):
        noise_bound(x)
