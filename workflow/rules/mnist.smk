# Study mnist after training: the lab's probes per (model, seed), then the claims.
# Each rule calls one stage of cnnrepro.studies.mnist through the shared stage adapter.
MNIST = studies.get("mnist")


rule lab_mnist:
    input:
        unpack(lambda w: data_paths("mnist")),
        weights=MNIST.run_file("weights"),
    output:
        lab=MNIST.run_file("lab"),
        lab_summary=MNIST.run_file("lab_summary"),
    log:
        paths.log("lab_mnist", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("lab_mnist", "{model}", "seed{seed}")
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
        study="mnist",
        stage="lab",
        spec=lambda w: training_spec(config, "mnist", w.model),
        seed=lambda w: int(w.seed),
        settings=config["studies"]["mnist"]["lab"],
    script:
        "../scripts/stage.py"


rule claims_mnist:
    input:
        study_files("mnist").paths(["metrics", "train_meta", "layers", "lab_summary"]),
    output:
        claims=MNIST.file("claims"),
        structure=MNIST.file("structure"),
    log:
        paths.log("claims_mnist"),
    benchmark:
        paths.benchmark("claims_mnist")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="mnist",
        stage="claims",
        files=study_files("mnist"),
        settings=config["studies"]["mnist"]["claims"],
        departures=cfg.departures(config, "mnist"),
        preset=config["preset"],
    script:
        "../scripts/stage.py"
