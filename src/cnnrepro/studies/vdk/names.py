"""Names the study's modules share, in a module that imports nothing: the figures read
them without importing the stages (which import torch)."""

IMMUNE = 0  # marker in the blur results: no kernel size / sigma flipped the prediction
