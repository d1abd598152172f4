import os

import jax
from hypothesis import settings

# sulib's numerics are tested in float64, as the chapters run them.
jax.config.update("jax_enable_x64", True)

# Property tests draw the same examples on every run (a fixed function of each test), so that a CI
# run is reproducible: a red run is a bug in sulib or in a test, never an unlucky draw. To search new
# examples instead: HYPOTHESIS_PROFILE=explore pytest tests/...
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
