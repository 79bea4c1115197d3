"""Moved to `glimpse_jax.reports.variant_mnist`; kept until the experiment imports it there."""

from glimpse_jax.reports.variant_mnist import cnn_name  # noqa: F401
