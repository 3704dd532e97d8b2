"""Snakemake adapter: compile paper.tex with latexmk (see cnnrepro.report.build_pdf)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.report import build_pdf

    build_pdf(snakemake.input.tex, snakemake.output[0])
