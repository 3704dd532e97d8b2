# Datasets: one cached .npz (uint8 images, labels, classes) + provenance JSON per split.


rule prepare_dataset:
    output:
        data=paths.data(),
        provenance=paths.data(ext="json"),
    log:
        paths.log("prepare_dataset", "{dataset}", "{split}"),
    benchmark:
        paths.benchmark("prepare_dataset", "{dataset}", "{split}")
    wildcard_constraints:
        dataset="|".join(SPECS),
        split="train|val|test",
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("prepare", "threads")
    resources:
        mem_mb=resources_of("prepare", "mem_mb"),
        runtime=resources_of("prepare", "runtime"),
    params:
        mirror=MIRROR,
        download_root=config["data"]["download_root"],
        options=lambda w: dataset_options(config, w.dataset),
    script:
        "../scripts/prepare_dataset.py"
