"""Snakemake adapter: train one (study, model, seed) (see cnnrepro.train.train)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.train import train

    train(snakemake.params.spec, int(snakemake.wildcards.seed), dict(snakemake.input.items()),
          Path(snakemake.output.weights).parent, threads=snakemake.threads)
