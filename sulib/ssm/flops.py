"""Operation counts on jaxprs (:func:`jaxpr_flops`): a machine-independent complexity measure.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.extend import core as jax_core

__all__ = [
    "jaxpr_flops",
]


_ELEMENTWISE = {"add", "sub", "mul", "div", "neg", "sqrt", "rsqrt", "exp", "log", "log1p", "integer_pow",
                "max", "min", "abs", "square", "pow", "expm1"}


def _sub_jaxprs(params: dict):
    """The jaxprs nested in an equation's parameters (scan and jit bodies, cond branches).

    Written out because ``jax.extend.core.jaxprs_in_params`` only exists from JAX 0.8 on, and Colab
    runs 0.7.2 (tests/data/colab-pip-freeze.txt).
    """
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax_core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax_core.Jaxpr):
                yield item


def _count_jaxpr(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        out_size = sum(int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))
        if name in _ELEMENTWISE:
            total += out_size
        elif name in ("cumsum", "cumprod", "reduce_sum", "reduce_max"):
            total += int(np.prod(eqn.invars[0].aval.shape))
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            total += 2 * out_size * int(np.prod([lhs_shape[d] for d in contract]))
        elif name == "triangular_solve":
            a_shape, b_shape = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            n = a_shape[-1]
            total += n * n * int(np.prod(b_shape)) // n  # n² multiply-adds per right-hand side
        for sub in _sub_jaxprs(eqn.params):
            inner = _count_jaxpr(sub)
            total += inner * int(eqn.params.get("length", 1)) if name == "scan" else inner
    return total


def jaxpr_flops(fn, *args) -> int:
    """Arithmetic operations that ``fn(*args)`` performs, counted on its jaxpr (deterministic).

    Counts one operation per output element of elementwise arithmetic (``add``, ``mul``,
    ``div``, ``sqrt``, ...), one per input element of ``cumsum`` and reductions, ``2 m n k``
    for a matrix product (``dot_general``) and ``n²`` per right-hand side of a triangular solve;
    data movement (slices, reshapes, broadcasts, concatenation, ``select``) is free. Bodies of
    ``scan`` count ``length`` times; other sub-jaxprs (``jit``, ``cond`` branches) once each.
    A machine-independent complexity measure, not a timing.

    Args:
        fn: a JAX-traceable function. args: its example arguments (arrays fix the shapes).

    Returns:
        the operation count, an int.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _count_jaxpr(jax.make_jaxpr(fn)(*args).jaxpr)
