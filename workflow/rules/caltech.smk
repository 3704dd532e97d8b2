# Study caltech: the document's own artifacts. Before training: convolution basics, two
# stacked layers, the stride/padding/size settings. After training, per (model, seed): the
# CNN's filters and maps and its shift test, both models' patches and guided backprop, the
# VGG19 backbone's diagnosis and probe; then the claims. Each rule calls one stage of
# cnnrepro.studies.caltech (params.stage) through the shared stage adapter.
CALTECH = studies.get("caltech")
CALTECH_CONFIG = config["studies"]["caltech"]


rule conv_basics_caltech:
    input:
        unpack(lambda w: data_paths("caltech")),
    output:
        conv=CALTECH.file("conv"),
        conv_meta=CALTECH.file("conv_meta"),
    log:
        paths.log("conv_basics_caltech"),
    benchmark:
        paths.benchmark("conv_basics_caltech")
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("report", "threads")
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
    params:
        study="caltech",
        stage="conv_basics",
        settings=CALTECH_CONFIG["basics"],
    script:
        "../scripts/stage.py"


use rule conv_basics_caltech as stacked_layers_caltech with:
    output:
        layers=CALTECH.file("stacked_layers"),
        layers_meta=CALTECH.file("layers_meta"),
    log:
        paths.log("stacked_layers_caltech"),
    benchmark:
        paths.benchmark("stacked_layers_caltech")
    params:
        study="caltech",
        stage="stacked_layers",
        settings=CALTECH_CONFIG["layers"],


use rule conv_basics_caltech as conv_settings_caltech with:
    output:
        setting_maps=CALTECH.file("setting_maps"),
        size_table=CALTECH.file("size_table"),
    log:
        paths.log("conv_settings_caltech"),
    benchmark:
        paths.benchmark("conv_settings_caltech")
    params:
        study="caltech",
        stage="conv_settings",
        settings=CALTECH_CONFIG["settings"],


rule patches_caltech:
    input:
        unpack(lambda w: data_paths("caltech")),
        weights=CALTECH.run_file("weights"),
        train_meta=CALTECH.run_file("train_meta"),
    output:
        patches=CALTECH.run_file("patches"),
        patch_table=CALTECH.run_file("patch_table"),
    log:
        paths.log("patches_caltech", "{model}", "seed{seed}"),
    benchmark:
        paths.benchmark("patches_caltech", "{model}", "seed{seed}")
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
        study="caltech",
        stage="patches",
        spec=lambda w: training_spec(config, "caltech", w.model),
        seed=lambda w: int(w.seed),
        settings=CALTECH_CONFIG["patches"],
    script:
        "../scripts/stage.py"


use rule patches_caltech as fallback_caltech with:
    input:
        unpack(lambda w: data_paths("caltech")),
        weights=CALTECH.run_file("weights", model="vgg19"),
        train_meta=CALTECH.run_file("train_meta", model="vgg19"),
    output:
        fallback=CALTECH.run_file("fallback", model="vgg19"),
    log:
        paths.log("fallback_caltech", "vgg19", "seed{seed}"),
    benchmark:
        paths.benchmark("fallback_caltech", "vgg19", "seed{seed}")
    params:
        study="caltech",
        stage="fallback",
        spec=lambda w: training_spec(config, "caltech", "vgg19"),
        seed=lambda w: int(w.seed),
        settings=CALTECH_CONFIG["fallback"],


rule trained_maps_caltech:
    input:
        unpack(lambda w: data_paths("caltech")),
        weights=CALTECH.run_file("weights", model="cnn"),
    output:
        maps=CALTECH.run_file("maps", model="cnn"),
    log:
        paths.log("trained_maps_caltech", "cnn", "seed{seed}"),
    benchmark:
        paths.benchmark("trained_maps_caltech", "cnn", "seed{seed}")
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
        study="caltech",
        stage="trained_maps",
        spec=lambda w: training_spec(config, "caltech", "cnn"),
        seed=lambda w: int(w.seed),
        settings=CALTECH_CONFIG["trained_maps"],
    script:
        "../scripts/stage.py"


use rule trained_maps_caltech as equivariance_caltech with:
    output:
        equivariance=CALTECH.run_file("equivariance", model="cnn"),
    log:
        paths.log("equivariance_caltech", "cnn", "seed{seed}"),
    benchmark:
        paths.benchmark("equivariance_caltech", "cnn", "seed{seed}")
    params:
        study="caltech",
        stage="equivariance",
        spec=lambda w: training_spec(config, "caltech", "cnn"),
        seed=lambda w: int(w.seed),
        settings=CALTECH_CONFIG["equivariance"],


rule claims_caltech:
    input:
        study_files("caltech").paths(
            [
                "metrics",
                ("train_meta", "vgg19"),
                ("equivariance", "cnn"),
                ("patch_table", "vgg19"),
                ("fallback", "vgg19"),
            ]
        ),
        conv_meta=CALTECH.file("conv_meta"),
        layers_meta=CALTECH.file("layers_meta"),
        size_table=CALTECH.file("size_table"),
    output:
        claims=CALTECH.file("claims"),
        fallback_summary_csv=CALTECH.file("fallback_summary"),
    log:
        paths.log("claims_caltech"),
    benchmark:
        paths.benchmark("claims_caltech")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        study="caltech",
        stage="claims",
        files=study_files("caltech"),
        settings=CALTECH_CONFIG["claims"],
        departures=cfg.departures(config, "caltech"),
        preset=config["preset"],
    script:
        "../scripts/stage.py"
