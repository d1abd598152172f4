import jax

# sulib's numerics are tested in float64, as the chapters run them.
jax.config.update("jax_enable_x64", True)
