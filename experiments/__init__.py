"""One module per paper method: `get_config(variant)` and `make_experiment(config)`."""
