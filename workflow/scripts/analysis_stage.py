"""Snakemake adapter: one per-(model, seed) analysis stage of a study (cnnrepro.<study>)."""
import importlib

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    module = importlib.import_module(f"cnnrepro.{snakemake.params.module}")
    stage = getattr(module, snakemake.params.stage)
    data = {k: v for k, v in snakemake.input.items() if k in ("train", "val", "test")}
    stage(snakemake.params.spec, int(snakemake.wildcards.seed), snakemake.input.weights,
          data, snakemake.params.settings, *snakemake.output, threads=snakemake.threads)
