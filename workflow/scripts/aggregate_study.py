"""Snakemake adapter: gather a study's seeds into tidy tables (see cnnrepro.aggregate)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.aggregate import aggregate

    runs = [tuple(r) for r in snakemake.params.runs]
    aggregate(snakemake.input.metrics, snakemake.input.costs,
              dict(zip(runs, snakemake.input.histories)),
              snakemake.output.long, snakemake.output.summary, snakemake.output.history)
