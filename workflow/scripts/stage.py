"""Snakemake adapter: one stage of a study, as its registry entry names it
(``cnnrepro.studies.<study>``). The rule's named inputs, outputs and params become the
stage function's keyword arguments; dataset splits (train, val, test) arrive as ``data``."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.studies import stage

    params = dict(snakemake.params.items())
    call = stage(params.pop("study"), params.pop("stage"))
    inputs = dict(snakemake.input.items())
    splits = {k: inputs.pop(k) for k in ("train", "val", "test") if k in inputs}
    call(**inputs, **({"data": splits} if splits else {}), **dict(snakemake.output.items()),
         **params, threads=snakemake.threads)
