"""Pictures of runs: learning curves, glimpse paths, read windows, attention and design maps.

One module per kind of picture, each named by what it draws. Plots read arrays and records only;
they import no experiment and no trainer.
"""
