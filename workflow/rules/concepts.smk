# Study concepts: the convolution types against their formulas, the hierarchy of features,
# CAM of its own GAP model (per seed), Grad-CAM and FGSM on models borrowed from the other
# studies (their weights are inputs: the training rule makes them), then the claims.
# Each rule calls one stage of cnnrepro.studies.concepts through the shared stage adapter.
from cnnrepro.studies.concepts import upstream as concepts_upstream

CONCEPTS = studies.get("concepts")
CONCEPTS_CONFIG = config["studies"]["concepts"]

if workflow.is_main_process and "concepts" in STUDIES:
    note = concepts_upstream.disabled_note(config)
    if note:
        print(note, file=sys.stderr)


rule convtypes_concepts:
    output:
        checks=CONCEPTS.file("convtypes_checks"),
        ratios=CONCEPTS.file("convtypes_ratios"),
        layers=CONCEPTS.file("convtypes_layers"),
        summary=CONCEPTS.file("convtypes_summary"),
        meta=CONCEPTS.file("convtypes_meta"),
    log:
        paths.log("convtypes_concepts"),
    benchmark:
        paths.benchmark("convtypes_concepts")
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("analyse", "threads")
    resources:
        mem_mb=resources_of("analyse", "mem_mb"),
        runtime=resources_of("analyse", "runtime"),
    params:
        study="concepts",
        stage="convtypes",
        grid={k: v for k, v in CONCEPTS_CONFIG["convtypes"].items() if k != "seed"},
        seed=CONCEPTS_CONFIG["convtypes"]["seed"],
    script:
        "../scripts/stage.py"


rule hierarchy_concepts:
    input:
        concepts_upstream.files([concepts_upstream.hierarchy_source(config)]),
    output:
        features=CONCEPTS.file("hierarchy"),
    log:
        paths.log("hierarchy_concepts"),
    benchmark:
        paths.benchmark("hierarchy_concepts")
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("analyse", "threads")
    resources:
        mem_mb=resources_of("analyse", "mem_mb"),
        runtime=resources_of("analyse", "runtime"),
        gpu=resources_of("analyse", "gpu"),
    params:
        study="concepts",
        stage="hierarchy",
        source=concepts_upstream.hierarchy_source(config),
        settings={
            k: CONCEPTS_CONFIG["hierarchy"][k]
            for k in ("channels", "steps", "lr", "l2", "init_std")
        },
    script:
        "../scripts/stage.py"


rule cam_concepts:
    input:
        unpack(lambda w: data_paths("concepts")),
        weights=CONCEPTS.run_file("weights"),
    output:
        cam_file=CONCEPTS.run_file("cam"),
        agreement=CONCEPTS.run_file("cam_agreement"),
    log:
        paths.log("cam_concepts", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("cam_concepts", "{model}", "seed{seed}")
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
        study="concepts",
        stage="cam",
        spec=lambda w: training_spec(config, "concepts", w.model),
        seed=lambda w: int(w.seed),
        settings=CONCEPTS_CONFIG["cam"],
    script:
        "../scripts/stage.py"


rule gradcam_concepts:
    input:
        concepts_upstream.files(
            [r for runs in concepts_upstream.targets(config, "gradcam").values() for r in runs]
        ),
    output:
        gradcam_file=CONCEPTS.file("gradcam"),
    log:
        paths.log("gradcam_concepts"),
    benchmark:
        paths.benchmark("gradcam_concepts")
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("analyse", "threads")
    resources:
        mem_mb=resources_of("analyse", "mem_mb"),
        runtime=resources_of("analyse", "runtime"),
        gpu=resources_of("analyse", "gpu"),
    params:
        study="concepts",
        stage="gradcam",
        targets=concepts_upstream.targets(config, "gradcam"),
        settings={"images": CONCEPTS_CONFIG["gradcam"]["images"]},
    script:
        "../scripts/stage.py"


# Same params as gradcam_concepts (a derived rule keeps every param it does not override).
use rule gradcam_concepts as attack_fgsm_concepts with:
    input:
        concepts_upstream.files(
            [r for runs in concepts_upstream.targets(config, "fgsm", True).values() for r in runs]
        ),
    output:
        examples=CONCEPTS.file("fgsm_examples"),
        sweep=CONCEPTS.file("fgsm_sweep"),
    log:
        paths.log("attack_fgsm_concepts"),
    benchmark:
        paths.benchmark("attack_fgsm_concepts")
    params:
        study="concepts",
        stage="fgsm",
        targets=concepts_upstream.targets(config, "fgsm", True),
        settings={k: v for k, v in CONCEPTS_CONFIG["fgsm"].items() if k != "targets"},


rule claims_concepts:
    input:
        study_files("concepts").paths(
            ["convtypes_checks", "convtypes_ratios", "cam_agreement", "fgsm_sweep"]
        ),
    output:
        claims=CONCEPTS.file("claims"),
        fgsm_table=CONCEPTS.file("fgsm_summary"),
    log:
        paths.log("claims_concepts"),
    benchmark:
        paths.benchmark("claims_concepts")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="concepts",
        stage="claims",
        files=study_files("concepts"),
        settings=CONCEPTS_CONFIG["claims"],
        fgsm_settings=CONCEPTS_CONFIG["fgsm"],
        grid_seed=CONCEPTS_CONFIG["convtypes"]["seed"],
        departures=cfg.departures(config, "concepts"),
        preset=config["preset"],
    script:
        "../scripts/stage.py"
