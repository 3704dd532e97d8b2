"""Snakemake adapter: draw one report figure (see cnnrepro.studies.render)."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.studies import render

    render(snakemake.wildcards.study, snakemake.wildcards.figure, snakemake.config,
           snakemake.output.png, snakemake.output.pdf, snakemake.wildcards.get("seed"))
