"""Snakemake adapter: the lenet feature-map animation (cnnrepro.studies.lenet.probes)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.studies.lenet.probes import animate

    animate(evolution=snakemake.input.evolution, gif=snakemake.output.gif)
