"""Snakemake adapter: one declared stage of a study (``cnnrepro.rules``). The rule's named
inputs, outputs and params become the stage function's keyword arguments; dataset splits
(train, val, test) arrive as ``data``; the files of a stage that reads every run come as
the ``files`` accessor (a param), not as paths."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.studies import stage as declared

    params = dict(snakemake.params.items())
    stage = declared(params.pop("study"), params.pop("stage"))
    inputs = dict(snakemake.input.items())
    inputs.pop("files", None)  # what the accessor in params opens
    splits = {k: inputs.pop(k) for k in ("train", "val", "test") if k in inputs}
    stage.run(**inputs, **({"data": splits} if splits else {}), **dict(snakemake.output.items()),
              **params, threads=snakemake.threads)
