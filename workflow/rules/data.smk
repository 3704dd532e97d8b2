# Datasets: one cached .npz (uint8 images, labels, classes) + provenance JSON per split.
# A local rule: on a cluster it runs on the submitting node, which can reach the download
# servers where compute nodes often cannot (and it is seconds of work).


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
    localrule: True
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
        code=job_code("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
