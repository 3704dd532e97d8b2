"""Snakemake adapter: evaluate one trained model (see cnnrepro.evaluate.evaluate)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.evaluate import evaluate

    data = {k: v for k, v in snakemake.input.items() if k in ("train", "val", "test")}
    evaluate(snakemake.params.spec, int(snakemake.wildcards.seed), snakemake.input.weights,
             data, snakemake.input.train_meta, dict(snakemake.output.items()),
             threads=snakemake.threads)
