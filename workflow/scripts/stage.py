"""Snakemake adapter: one declared stage of a study (``cnnrepro.rules``). The rule's named
inputs, outputs and params become the stage function's keyword arguments
(``cnnrepro.rules.arguments``): dataset splits (train, val, test) arrive as ``data``; the
files of a stage that reads every run come as the ``files`` accessor (a param), not as
paths."""
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.rules import arguments
    from cnnrepro.studies import stage as declared

    params = dict(snakemake.params.items())
    stage = declared(params["study"], params["stage"])
    stage.run(**arguments(dict(snakemake.input.items()), dict(snakemake.output.items()), params),
              threads=snakemake.threads)
