# Study lenet: the grid searches (one vectorised job per model and protocol: every point
# trained together), their picks, the data and snapshot probes, the animation, and the
# claims. Final training (train_model) applies the pick through the training-overrides file.
from cnnrepro.studies.lenet import grid as lenet_grid, probes as lenet_probes

LENET = studies.get("lenet")
GRID = config["studies"]["lenet"]["grid"]


rule grid_lenet:
    input:
        unpack(lambda w: data_paths("lenet")),
    output:
        history=LENET.file("grid_history", protocol="{protocol}"),
        meta=LENET.file("grid_meta", protocol="{protocol}"),
    log:
        paths.log("grid_lenet", "{model}", "{protocol}"),
    benchmark:
        paths.benchmark("grid_lenet", "{model}", "{protocol}")
    wildcard_constraints:
        protocol="clean|paper",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("train", "threads")
    resources:
        mem_mb=resources_of("train", "mem_mb"),
        runtime=resources_of("train", "runtime"),
        gpu=resources_of("train", "gpu"),
    params:
        study="lenet",
        stage="grid",
        spec=lambda w: lenet_grid.grid_spec(config, w.model, w.protocol),
        runs=lenet_grid.grid_runs(GRID),
        seed=GRID["seed"],
        chunk_size=GRID["chunk_size"],
    script:
        "../scripts/stage.py"


rule select_lenet:
    input:
        histories=lambda w: [
            LENET.file("grid_history", model=w.model, protocol=p) for p in GRID["protocols"]
        ],
    output:
        grid_table=LENET.file("grid_table"),
        selection=LENET.file("selection"),
        overrides=LENET.file("overrides"),
    log:
        paths.log("select_lenet", "{model}"),
    benchmark:
        paths.benchmark("select_lenet", "{model}")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="lenet",
        stage="select",
        protocols=GRID["protocols"],
        grid=GRID,
        model=lambda w: w.model,
    script:
        "../scripts/stage.py"


rule data_probe_lenet:
    input:
        train=lambda w: data_paths("lenet")["train"],
    output:
        data_probe=LENET.file("data_probe"),
    log:
        paths.log("data_probe_lenet"),
    benchmark:
        paths.benchmark("data_probe_lenet")
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("report", "threads")
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
    params:
        study="lenet",
        stage="data_probe",
        settings=config["studies"]["lenet"]["probe"],
        seed=SEEDS[0],
    script:
        "../scripts/stage.py"


rule evolution_lenet:
    input:
        unpack(lambda w: data_paths("lenet")),
        snapshots=LENET.run_file("snapshots"),
    output:
        evolution=LENET.run_file("evolution"),
    log:
        paths.log("evolution_lenet", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("evolution_lenet", "{model}", "seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("report", "threads")
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
    params:
        study="lenet",
        stage="evolution",
        spec=lambda w: training_spec(config, "lenet", w.model),
        settings=config["studies"]["lenet"]["probe"],
    script:
        "../scripts/stage.py"


rule animate_lenet:
    input:
        evolution=LENET.run_file("evolution", lenet_probes.CNN, SEEDS[0]),
    output:
        gif=paths.figure("lenet", "lenet_feature_maps", "gif"),
    log:
        paths.log("animate_lenet"),
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="lenet",
        stage="animate",
    script:
        "../scripts/stage.py"


rule claims_lenet:
    input:
        study_files("lenet").paths(
            ["metrics", "confusion", "history"]
            + (["grid_table", "selection"] if GRID["enabled"] else [])
        ),
    output:
        claims=LENET.file("claims"),
        grid_summary=LENET.file("grid_summary"),
    log:
        paths.log("claims_lenet"),
    benchmark:
        paths.benchmark("claims_lenet")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="lenet",
        stage="claims",
        files=study_files("lenet"),
        settings=config["studies"]["lenet"]["claims"],
        departures=cfg.departures(config, "lenet"),
        preset=config["preset"],
        grid_seed=GRID["seed"] if GRID["enabled"] else None,
    script:
        "../scripts/stage.py"
