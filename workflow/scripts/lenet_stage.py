"""Snakemake adapter: the lenet study's rules, one call each (see cnnrepro.lenet)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro import lenet

    rule, p = snakemake.rule, snakemake.params
    if rule == "select_lenet":
        lenet.select(dict(zip(map(tuple, p.points), snakemake.input)), p.lrs, p.wds,
                     snakemake.wildcards.model, snakemake.output.grid, snakemake.output.selection)
    elif rule == "data_probe_lenet":
        lenet.data_stage(snakemake.input.train, p.settings, p.seed, snakemake.output[0])
    elif rule == "evolution_lenet":
        data = {k: v for k, v in snakemake.input.items() if k in ("train", "test")}
        lenet.evolution_stage(p.spec, int(snakemake.wildcards.seed), snakemake.input.snapshots,
                              data, p.settings, snakemake.output[0])
    elif rule == "animate_lenet":
        lenet.write_gif(snakemake.input[0], snakemake.output[0])
    elif rule == "claims_lenet":
        results = Path(snakemake.input.metrics[0]).parents[3]  # results/lenet
        lenet.claims_stage(p.models, p.seeds, results, p.rules, p.grid_seed,
                           snakemake.output.claims, snakemake.output.grid)
    else:
        raise ValueError(f"lenet_stage.py has no step for rule {rule}")
