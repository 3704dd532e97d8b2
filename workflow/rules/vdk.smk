# Study vdk after training: attribution, FGSM and blur per (model, seed), then the claims.
# The three per-model stages share one adapter (workflow/scripts/analysis_stage.py) and differ
# in the function of cnnrepro.vdk they call and the config block they pass it.


rule explain_vdk:
    input:
        unpack(lambda w: data_paths("vdk")),
        weights="results/vdk/{model}/seed{seed}/model.pt",
    output:
        "results/vdk/{model}/seed{seed}/explain/attributions.npz",
        "results/vdk/{model}/seed{seed}/explain/faithfulness.csv",
    params:
        spec=lambda w: cfg.training_spec(config, "vdk", w.model),
        settings=config["studies"].get("vdk", {}).get("attribution"),
        module="vdk",
        stage="explain_stage",
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/explain_vdk/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/explain_vdk/{model}/seed{seed}.tsv"
    threads: res("analyse", "threads")
    resources:
        mem_mb=res("analyse", "mem_mb"),
        runtime=res("analyse", "runtime"),
        gpu=res("analyse", "gpu"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/analysis_stage.py"


use rule explain_vdk as attack_fgsm_vdk with:
    output:
        "results/vdk/{model}/seed{seed}/attack/fgsm.json",
        "results/vdk/{model}/seed{seed}/attack/fgsm_clean.csv",
    params:
        spec=lambda w: cfg.training_spec(config, "vdk", w.model),
        settings=config["studies"].get("vdk", {}).get("fgsm"),
        module="vdk",
        stage="fgsm_stage",
    log:
        "results/logs/attack_fgsm_vdk/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/attack_fgsm_vdk/{model}/seed{seed}.tsv"


use rule explain_vdk as attack_blur_vdk with:
    output:
        "results/vdk/{model}/seed{seed}/attack/blur.npz",
        "results/vdk/{model}/seed{seed}/attack/blur.json",
    params:
        spec=lambda w: cfg.training_spec(config, "vdk", w.model),
        settings=config["studies"].get("vdk", {}).get("blur"),
        module="vdk",
        stage="blur_stage",
    log:
        "results/logs/attack_blur_vdk/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/attack_blur_vdk/{model}/seed{seed}.tsv"


rule claims_vdk:
    input:
        metrics=lambda w: study_runs("vdk", "results/{study}/{model}/seed{seed}/eval/metrics.json"),
        fgsm=lambda w: study_runs("vdk", "results/{study}/{model}/seed{seed}/attack/fgsm.json"),
        blur=lambda w: study_runs("vdk", "results/{study}/{model}/seed{seed}/attack/blur.json"),
        faithfulness=lambda w: study_runs(
            "vdk", "results/{study}/{model}/seed{seed}/explain/faithfulness.csv"
        ),
    output:
        claims="results/vdk/summary/claims.csv",
        paired="results/vdk/summary/paired_tests.csv",
        faithfulness="results/vdk/summary/faithfulness.csv",
        cost="results/vdk/summary/cost.csv",
    params:
        models=lambda w: list(config["studies"]["vdk"]["models"]),
        seeds=SEEDS,
        rules=config["studies"].get("vdk", {}).get("claims"),
    log:
        "results/logs/claims_vdk.log",
    benchmark:
        "results/benchmarks/claims_vdk.tsv"
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/claims_vdk.py"
