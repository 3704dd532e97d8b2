"""Snakemake adapter: train one (study, model, seed) or one grid point (see cnnrepro.train.train)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.lenet import apply_selection
    from cnnrepro.train import train

    spec = snakemake.params.spec
    if "selection" in snakemake.input.keys():  # lenet: lr and weight decay from the grid
        spec = apply_selection(spec, snakemake.input.selection, snakemake.params.selection)
    data = {k: v for k, v in snakemake.input.items() if k in ("train", "val", "test")}
    seed = snakemake.params.get("seed", snakemake.wildcards.get("seed"))
    train(spec, int(seed), data, Path(snakemake.output.weights).parent, threads=snakemake.threads)
