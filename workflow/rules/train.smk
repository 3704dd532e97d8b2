# Training: one job per (study, model, seed); resumes from its checkpoint if re-run.


rule train_model:
    input:
        unpack(train_inputs),
    output:
        weights="results/{study}/{model}/seed{seed}/model.pt",
        history="results/{study}/{model}/seed{seed}/history.csv",
        meta="results/{study}/{model}/seed{seed}/train.json",
        snapshots=directory("results/{study}/{model}/seed{seed}/snapshots"),
    params:
        spec=lambda w: cfg.training_spec(config, w.study, w.model),
        selection=lambda w: grid_selection(w.study),
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/train_model/{study}/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_model/{study}/{model}/seed{seed}.tsv"
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/train_model.py"
