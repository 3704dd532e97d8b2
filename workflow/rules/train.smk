# Training: one job per (study, model, seed); resumes from its checkpoint if re-run.


rule train_model:
    input:
        unpack(train_inputs),
    output:
        weights=paths.run_file("weights"),
        history=paths.run_file("history"),
        train_meta=paths.run_file("train_meta"),
        snapshots=directory(paths.run_file("snapshots")),
    log:
        paths.log("train_model", "{study}", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("train_model", "{study}", "{model}", "seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("train", "threads")
    resources:
        mem_mb=resources_of("train", "mem_mb"),
        runtime=resources_of("train", "runtime"),
        gpu=resources_of("train", "gpu"),
    params:
        spec=lambda w: training_spec(config, w.study, w.model),
        seed=lambda w: int(w.seed),
        code=job_code("train_model.py"),
    script:
        "../scripts/train_model.py"
