# Study mnist after training: the lab's probes per (model, seed), then the claims.


use rule explain_vdk as lab_mnist with:
    input:
        unpack(lambda w: data_paths("mnist")),
        weights="results/mnist/{model}/seed{seed}/model.pt",
    output:
        "results/mnist/{model}/seed{seed}/lab/lab.npz",
        "results/mnist/{model}/seed{seed}/lab/lab.json",
    params:
        spec=lambda w: cfg.training_spec(config, "mnist", w.model),
        settings=config["studies"].get("mnist", {}).get("lab"),
        module="mnist",
        stage="lab_stage",
    log:
        "results/logs/lab_mnist/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/lab_mnist/{model}/seed{seed}.tsv"


rule claims_mnist:
    input:
        metrics=lambda w: study_runs("mnist", "results/{study}/{model}/seed{seed}/eval/metrics.json"),
        layers=lambda w: study_runs("mnist", "results/{study}/{model}/seed{seed}/eval/layers.csv"),
        lab=lambda w: study_runs("mnist", "results/{study}/{model}/seed{seed}/lab/lab.json"),
    output:
        claims="results/mnist/summary/claims.csv",
        structure="results/mnist/summary/structure.csv",
    params:
        models=lambda w: study_models("mnist"),
        seeds=SEEDS,
        rules=lambda w: config["studies"]["mnist"]["claims"],
    log:
        "results/logs/claims_mnist.log",
    benchmark:
        "results/benchmarks/claims_mnist.tsv"
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/claims_mnist.py"
