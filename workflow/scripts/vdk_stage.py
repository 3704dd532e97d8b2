"""Snakemake adapter: one per-model stage of the vdk study (see cnnrepro.vdk)."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro import vdk

    stage = getattr(vdk, snakemake.params.stage)
    data = {k: v for k, v in snakemake.input.items() if k in ("train", "val", "test")}
    stage(snakemake.params.spec, int(snakemake.wildcards.seed), snakemake.input.weights,
          data, snakemake.params.settings, *snakemake.output, threads=snakemake.threads)
