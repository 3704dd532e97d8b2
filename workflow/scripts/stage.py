"""Snakemake adapter: one declared stage of a study (``cnnrepro.rules``). The rule's named
inputs, outputs and params become the stage function's keyword arguments
(``cnnrepro.study.arguments``): dataset splits (train, val, test) arrive as ``data``; the
files of a stage that reads every run come as the ``files`` accessor (a param), not as
paths. Only the module that declares the stage is imported (``cnnrepro.study.declared``)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.study import arguments, declared

    params = dict(snakemake.params.items())
    stage = declared(params["module"], params["stage"])
    stage.run(**arguments(dict(snakemake.input.items()), dict(snakemake.output.items()), params),
              threads=snakemake.threads)
