# Datasets: one cached .npz (uint8 images, labels, classes) + provenance JSON per split.


rule prepare_dataset:
    output:
        data="results/data/{dataset}/{split}.npz",
        provenance="results/data/{dataset}/{split}.json",
    params:
        mirror=MIRROR,
        download_root=config["data"]["download_root"],
        options=dataset_options,
    wildcard_constraints:
        dataset="|".join(SPECS),
        split="train|val|test",
    log:
        "results/logs/prepare_dataset/{dataset}/{split}.log",
    benchmark:
        "results/benchmarks/prepare_dataset/{dataset}/{split}.tsv"
    threads: res("prepare", "threads")
    resources:
        mem_mb=res("prepare", "mem_mb"),
        runtime=res("prepare", "runtime"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/prepare_dataset.py"
