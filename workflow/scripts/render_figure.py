"""Snakemake adapter: draw one report figure (see cnnrepro.studies.render)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.studies import render

    render(snakemake.wildcards.study, snakemake.wildcards.figure, snakemake.config,
           snakemake.output.png, snakemake.output.pdf, snakemake.wildcards.get("seed"))
