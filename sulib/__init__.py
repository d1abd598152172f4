"""sulib: the helper package of the machine-checked companion to kexue.fm.

Modules:
    derive     -- chains of equalities verified by SymPy as they are displayed
    attention  -- softmax attention entropy kernels (JAX)
    report     -- small deterministic tables for notebook output
"""

__version__ = "0.1.0"
