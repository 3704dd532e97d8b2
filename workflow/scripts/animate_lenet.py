"""Snakemake adapter: the lenet feature-map animation (cnnrepro.studies.lenet.probes)."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.studies.lenet.probes import animate

    animate(evolution=snakemake.input.evolution, gif=snakemake.output.gif)
