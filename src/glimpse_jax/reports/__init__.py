"""The results book: a shared layer (`runs`, `tables`), one chapter per experiment, `papers`."""
