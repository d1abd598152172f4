"""sulib.report (tables, verdicts) and sulib.plotting (the figure style and its label check)."""

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import matplotlib.pyplot as plt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sulib.plotting import BOOK_STYLE, OKABE_ITO, finish, use_book_style
from sulib.report import STATUSES, Claim, Table, Verdict, parse_verdict_html


def claim(k=1, **kw):
    fields = dict(id=f"C{k}", claim="x = y", check="SymPy", measured="0", status="verified", section="sec-a")
    return Claim(**{**fields, **kw})


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip)


@given(st.lists(st.tuples(text, text, text, st.sampled_from(STATUSES)), min_size=1, max_size=5))
def test_verdict_html_round_trips_any_text(rows):
    claims = [Claim(f"C{k + 1}", a, b, c, s, "sec-a") for k, (a, b, c, s) in enumerate(rows)]
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
])
def test_verdict_refuses_malformed_claims(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Verdict("kexue9034", [claim(**kwargs)])


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
