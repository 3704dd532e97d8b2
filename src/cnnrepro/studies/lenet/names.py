"""Names the study's modules share, in a module that imports nothing: the figures and the
registry read them without importing the stages (which import torch)."""

CNN = "cnn"  # the study's convolutional model (config name): the one whose snapshots are probed
# Where the grids and their picks go (the study's files; the select stage reads a grid by
# model and protocol).
FILES = {"grid_history": "grid/{model}/{protocol}/history.csv",
         "grid_meta": "grid/{model}/{protocol}/train.json",
         "grid_table": "select/{model}/grid.csv",
         "selection": "select/{model}/selection.json",
         "overrides": "select/{model}/overrides.json"}
