# Evaluation of every trained model, then one tidy summary per study over all seeds.


rule evaluate_model:
    input:
        unpack(study_data),
        weights="results/{study}/{model}/seed{seed}/model.pt",
        meta="results/{study}/{model}/seed{seed}/train.json",
    output:
        metrics="results/{study}/{model}/seed{seed}/eval/metrics.json",
        predictions="results/{study}/{model}/seed{seed}/eval/predictions.npz",
        confusion="results/{study}/{model}/seed{seed}/eval/confusion.csv",
        roc="results/{study}/{model}/seed{seed}/eval/roc.csv",
        layers="results/{study}/{model}/seed{seed}/eval/layers.csv",
    params:
        spec=lambda w: cfg.evaluation_spec(config, w.study, w.model),
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/evaluate_model/{study}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/evaluate_model/{study}/{model}/seed{seed}.tsv"
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        gpu=res("evaluate", "gpu"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/evaluate_model.py"


rule aggregate_study:
    input:
        metrics=lambda w: study_runs(
            w.study, "results/{study}/{model}/seed{seed}/eval/metrics.json"
        ),
        histories=lambda w: study_runs(
            w.study, "results/{study}/{model}/seed{seed}/history.csv"
        ),
    output:
        long="results/{study}/summary/metrics_long.csv",
        summary="results/{study}/summary/metrics_summary.csv",
        history="results/{study}/summary/history.csv",
    log:
        "results/logs/aggregate_study/{study}.log",
    benchmark:
        "results/benchmarks/aggregate_study/{study}.tsv"
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/aggregate_study.py"
