# Evaluation of every trained model, then one tidy summary per study over all seeds.


rule evaluate_model:
    input:
        unpack(lambda w: data_paths(w.study)),
        weights=paths.run_file("weights"),
        meta=paths.run_file("train_meta"),
    output:
        metrics=paths.run_file("metrics"),
        predictions=paths.run_file("predictions"),
        confusion=paths.run_file("confusion"),
        roc=paths.run_file("roc"),
        layers=paths.run_file("layers"),
    params:
        spec=lambda w: cfg.evaluation_spec(config, w.study, w.model),
    wildcard_constraints:
        seed=r"\d+",
    log:
        paths.log("evaluate_model", "{study}", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("evaluate_model", "{study}", "{model}", "seed{seed}")
    threads: resources_of("evaluate", "threads")
    resources:
        mem_mb=resources_of("evaluate", "mem_mb"),
        runtime=resources_of("evaluate", "runtime"),
        gpu=resources_of("evaluate", "gpu"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/evaluate_model.py"


rule aggregate_study:
    input:
        metrics=lambda w: study_files(w.study).paths(["metrics"]),
        histories=lambda w: study_files(w.study).paths(["history"]),
    output:
        long=paths.study_file("metrics_long"),
        summary=paths.study_file("metrics_summary"),
        history=paths.study_file("histories"),
    params:
        runs=lambda w: list(study_files(w.study).runs("metrics")),
    log:
        paths.log("aggregate_study", "{study}"),
    benchmark:
        paths.benchmark("aggregate_study", "{study}")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/aggregate_study.py"
