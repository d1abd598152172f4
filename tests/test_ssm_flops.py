"""Operation counts of sulib.ssm.flops."""

import numpy as np

from sulib.ssm import (
    jaxpr_flops,
)

def test_jaxpr_flops_counts_products_and_elementwise_work():
    for d in (4, 32):
        A = np.ones((d, d))
        assert jaxpr_flops(lambda v: A @ v, np.ones(d)) == 2 * d * d
        assert jaxpr_flops(lambda v: v * 2.0 + 1.0, np.ones(d)) == 2 * d
    # the structured LegS products are linear in d
    from sulib.ssm.legs import _legs_matvec, _legs_solve
    small, big = (jaxpr_flops(_legs_solve, np.ones(d), 0.1) for d in (64, 1024))
    assert 14 < big / small < 18
    assert jaxpr_flops(_legs_matvec, np.ones(1024)) == 16 * jaxpr_flops(_legs_matvec, np.ones(64))
