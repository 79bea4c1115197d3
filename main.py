"""Trains one experiment: `python main.py --config=ram:smoke --workdir=runs/x`.

The same command as the installed `glimpse-jax` (see `glimpse_jax/cli.py`): `--config` names an
installed experiment (`ram:smoke`) or a config file (`experiments/ram.py:smoke`) and its variant;
any field is overridden with `--config.<field>=<value>` (the config is locked, so a mistyped field
fails). The module's `make_experiment(config)` builds the method and `glimpse_jax.train.run` trains
it, resuming from the workdir's checkpoint when there is one.
"""

from glimpse_jax import cli

if __name__ == '__main__':
  cli.run()
