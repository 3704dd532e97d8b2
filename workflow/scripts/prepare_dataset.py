"""Snakemake adapter: prepare one dataset split (see cnnrepro.datasets.prepared.prepare_split)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.datasets.prepared import prepare_split

    prepare_split(snakemake.wildcards.dataset, snakemake.wildcards.split,
                  snakemake.output.data, snakemake.output.provenance,
                  snakemake.params.mirror, snakemake.params.download_root,
                  snakemake.params.options)
