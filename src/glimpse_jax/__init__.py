"""glimpse_jax: glimpse-based visual attention models in JAX/Flax."""

__version__ = "0.1.0"
