# Study lenet beyond its declared stages (workflow/rules/stages.smk): the animation of the
# first seed's feature maps, a report animation drawn like the figures. Final training
# (train_model) applies the grid's pick through the training-overrides file.
from cnnrepro.studies.lenet.names import CNN as LENET_CNN

LENET = studies.get("lenet")


rule animate_lenet:
    input:
        evolution=LENET.run_file("evolution", LENET_CNN, SEEDS[0]),
    output:
        gif=paths.figure("lenet", "lenet_feature_maps", "gif"),
    log:
        paths.log("animate_lenet"),
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    params:
        code=job_code("animate_lenet.py"),
    script:
        "../scripts/animate_lenet.py"
