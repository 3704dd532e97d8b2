"""Snakemake adapter: draw one report figure (see cnnrepro.figures)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.figures import render

    results = Path(snakemake.output.png).parents[2]  # results/report/<study>/x.png
    render(snakemake.wildcards.study, snakemake.wildcards.figure, snakemake.params.models,
           snakemake.params.seeds, snakemake.output.png, snakemake.output.pdf, results)
