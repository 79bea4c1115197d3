"""glimpse_jax: glimpse-based visual attention models in JAX/Flax."""

__version__ = "0.1.0"

_INFERENCE = ('Run', 'load_run', 'predict')


def __getattr__(name):
  # `glimpse_jax.load_run` / `glimpse_jax.predict` without importing jax for `glimpse_jax.glimpse`.
  if name in _INFERENCE:
    from glimpse_jax import inference  # pylint: disable=g-import-not-at-top
    return getattr(inference, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
