"""Snakemake adapter: the vdk claims table (see cnnrepro.vdk.claims_stage)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.vdk import claims_stage

    results = Path(snakemake.input.metrics[0]).parents[3]  # results/vdk
    claims_stage(snakemake.params.models, snakemake.params.seeds, results,
                 snakemake.params.rules, snakemake.output.claims, snakemake.output.paired,
                 snakemake.output.faithfulness, snakemake.output.cost)
