# Study lenet: the grid search (one job per point and model), its two picks, the data and
# snapshot probes, the animation, and the claims. Final training (train_model) reads the pick.


use rule train_model as grid_point_lenet with:
    input:
        unpack(lambda w: data_paths("lenet")),
    output:
        weights=temp("results/lenet/grid/{model}/lr{i}_wd{j}/model.pt"),
        history="results/lenet/grid/{model}/lr{i}_wd{j}/history.csv",
        meta="results/lenet/grid/{model}/lr{i}_wd{j}/train.json",
    params:
        spec=lambda w: cfg.grid_spec(config, w.model, int(w.i), int(w.j)),
        seed=lambda w: config["studies"]["lenet"]["grid"]["seed"],
        selection=None,  # a grid point uses its own lr and weight decay
    wildcard_constraints:
        i=r"\d+",
        j=r"\d+",
    log:
        "results/logs/grid_point_lenet/{model}/lr{i}_wd{j}.log",
    benchmark:
        "results/benchmarks/grid_point_lenet/{model}/lr{i}_wd{j}.tsv"


rule select_lenet:
    input:
        lambda w: [
            f"results/lenet/grid/{w.model}/lr{i}_wd{j}/history.csv"
            for i, j in cfg.grid_points(config)
        ],
    output:
        grid="results/lenet/grid/{model}/grid.csv",
        selection="results/lenet/grid/{model}/selection.json",
    params:
        points=lambda w: cfg.grid_points(config),
        lrs=lambda w: cfg.logspace(config["studies"]["lenet"]["grid"]["lr"]),
        wds=lambda w: cfg.logspace(config["studies"]["lenet"]["grid"]["weight_decay"]),
    log:
        "results/logs/select_lenet/{model}.log",
    benchmark:
        "results/benchmarks/select_lenet/{model}.tsv"
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/lenet_stage.py"


rule data_probe_lenet:
    input:
        train=lambda w: data_paths("lenet")["train"],
    output:
        "results/lenet/probe/data.npz",
    params:
        settings=lambda w: config["studies"]["lenet"]["probe"],
        seed=lambda w: SEEDS[0],
    log:
        "results/logs/data_probe_lenet.log",
    benchmark:
        "results/benchmarks/data_probe_lenet.tsv"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/lenet_stage.py"


rule evolution_lenet:
    input:
        unpack(lambda w: data_paths("lenet")),
        snapshots="results/lenet/{model}/seed{seed}/snapshots",
    output:
        "results/lenet/{model}/seed{seed}/probe/evolution.npz",
    params:
        spec=lambda w: cfg.training_spec(config, "lenet", w.model),
        settings=lambda w: config["studies"]["lenet"]["probe"],
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/evolution_lenet/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evolution_lenet/{model}/seed{seed}.tsv"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/lenet_stage.py"


rule animate_lenet:
    input:
        lambda w: f"results/lenet/cnn/seed{SEEDS[0]}/probe/evolution.npz",
    output:
        "results/report/lenet/lenet_feature_maps.gif",
    log:
        "results/logs/animate_lenet.log",
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/lenet_stage.py"


rule claims_lenet:
    input:
        metrics=lambda w: study_runs("lenet", "results/{study}/{model}/seed{seed}/eval/metrics.json"),
        histories=lambda w: study_runs("lenet", "results/{study}/{model}/seed{seed}/history.csv"),
        grids=lambda w: [
            f"results/lenet/grid/{model}/grid.csv" for model in study_models("lenet")
        ]
        if grid_selection("lenet")
        else [],
    output:
        claims="results/lenet/summary/claims.csv",
        grid="results/lenet/summary/grid.csv",
    params:
        models=lambda w: study_models("lenet"),
        seeds=SEEDS,
        rules=lambda w: config["studies"]["lenet"]["claims"],
        grid_seed=lambda w: config["studies"]["lenet"]["grid"]["seed"] if grid_selection("lenet") else None,
    log:
        "results/logs/claims_lenet.log",
    benchmark:
        "results/benchmarks/claims_lenet.tsv"
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/lenet_stage.py"
