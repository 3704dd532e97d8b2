"""Snakemake adapter: train one (study, model, seed) (see cnnrepro.train.train)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.train import train

    data = {k: v for k, v in snakemake.input.items() if k in ("train", "val", "test")}
    train(snakemake.params.spec, snakemake.params.seed, data, dict(snakemake.output.items()),
          threads=snakemake.threads, overrides=snakemake.input.get("overrides"),
          # not a param: how often a job saves its state changes none of its outputs
          checkpoint_seconds=snakemake.config["runtime"]["checkpoint_seconds"])
