# Evaluation of every trained model, then one tidy summary per study over all seeds.


rule evaluate_model:
    input:
        unpack(lambda w: data_paths(w.study)),
        weights=paths.run_file("weights"),
        train_meta=paths.run_file("train_meta"),
    output:
        metrics=paths.run_file("metrics"),
        cost=paths.run_file("cost"),
        predictions=paths.run_file("predictions"),
        confusion=paths.run_file("confusion"),
        roc=paths.run_file("roc"),
        layers=paths.run_file("layers"),
    log:
        paths.log("evaluate_model", "{study}", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("evaluate_model", "{study}", "{model}", "seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("evaluate", "threads")
    resources:
        mem_mb=resources_of("evaluate", "mem_mb"),
        runtime=resources_of("evaluate", "runtime"),
        gpu=resources_of("evaluate", "gpu"),
    params:
        spec=lambda w: evaluation_spec(config, w.study, w.model),
        code=job_code("evaluate_model.py"),
    script:
        "../scripts/evaluate_model.py"


rule aggregate_study:
    input:
        metrics=lambda w: study_files(w.study).paths(["metrics"]),
        costs=lambda w: study_files(w.study).paths(["cost"]),
        histories=lambda w: study_files(w.study).paths(["history"]),
    output:
        long=paths.study_file("metrics_long"),
        summary=paths.study_file("metrics_summary"),
        history=paths.study_file("histories"),
    log:
        paths.log("aggregate_study", "{study}"),
    benchmark:
        paths.benchmark("aggregate_study", "{study}")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        runs=lambda w: list(study_files(w.study).runs("metrics")),
        code=job_code("aggregate_study.py"),
    script:
        "../scripts/aggregate_study.py"
