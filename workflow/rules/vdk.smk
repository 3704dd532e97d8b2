# Study vdk after training: attribution, FGSM and blur per (model, seed), then the claims.
# Each rule calls one stage of cnnrepro.studies.vdk (params.stage) through the shared
# stage adapter, with its named inputs, outputs and params as keyword arguments.
VDK = studies.get("vdk")


rule attack_fgsm_vdk:
    input:
        unpack(lambda w: data_paths("vdk")),
        weights=VDK.run_file("weights"),
    output:
        fgsm=VDK.run_file("fgsm"),
        fgsm_curve=VDK.run_file("fgsm_curve"),
    log:
        paths.log("attack_fgsm_vdk", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("attack_fgsm_vdk", "{model}", "seed{seed}")
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("analyse", "threads")
    resources:
        mem_mb=resources_of("analyse", "mem_mb"),
        runtime=resources_of("analyse", "runtime"),
        gpu=resources_of("analyse", "gpu"),
    params:
        study="vdk",
        stage="fgsm",
        spec=lambda w: training_spec(config, "vdk", w.model),
        seed=lambda w: int(w.seed),
        settings=config["studies"]["vdk"]["fgsm"],
    script:
        "../scripts/stage.py"


# `use rule ... with: params:` keeps the parent's params and overrides or adds the named
# ones: the explain stage alone takes Captum's batching.
use rule attack_fgsm_vdk as explain_vdk with:
    output:
        attributions=VDK.run_file("attributions"),
        faithfulness=VDK.run_file("faithfulness"),
    log:
        paths.log("explain_vdk", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("explain_vdk", "{model}", "seed{seed}")
    params:
        stage="explain",
        settings=config["studies"]["vdk"]["attribution"],
        batching=config["runtime"]["attribution_batch"],


use rule attack_fgsm_vdk as attack_blur_vdk with:
    output:
        blur=VDK.run_file("blur"),
        blur_summary=VDK.run_file("blur_summary"),
    log:
        paths.log("attack_blur_vdk", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("attack_blur_vdk", "{model}", "seed{seed}")
    params:
        study="vdk",
        stage="blur",
        spec=lambda w: training_spec(config, "vdk", w.model),
        seed=lambda w: int(w.seed),
        settings=config["studies"]["vdk"]["blur"],


rule claims_vdk:
    input:
        study_files("vdk").paths(["metrics", "cost", "fgsm", "blur_summary", "faithfulness"]),
    output:
        claims=VDK.file("claims"),
        paired=VDK.file("paired"),
        faithfulness_summary=VDK.file("faithfulness_summary"),
        cost_summary=VDK.file("cost_summary"),
    log:
        paths.log("claims_vdk"),
    benchmark:
        paths.benchmark("claims_vdk")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="vdk",
        stage="claims",
        files=study_files("vdk"),
        settings=config["studies"]["vdk"]["claims"],
        departures=cfg.departures(config, "vdk"),
        preset=config["preset"],
        fgsm_settings=config["studies"]["vdk"]["fgsm"],
    script:
        "../scripts/stage.py"
