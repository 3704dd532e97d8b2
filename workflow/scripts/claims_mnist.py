"""Snakemake adapter: the mnist claims and structure tables (see cnnrepro.mnist.claims_stage)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.mnist import claims_stage

    results = Path(snakemake.input.metrics[0]).parents[3]  # results/mnist
    claims_stage(snakemake.params.models, snakemake.params.seeds, results,
                 snakemake.params.rules, snakemake.output.claims, snakemake.output.structure)
