# Reproduction pipeline of five CNN studies: a table of contents.
# Stages: data -> train -> evaluate -> aggregate -> study analyses (vdk, mnist, lenet) -> report.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/vdk.smk"
include: "workflow/rules/mnist.smk"
include: "workflow/rules/lenet.smk"
include: "workflow/rules/report.smk"


onstart:
    launch.record_owner()  # lets ./repro tell a stale lock after a crash
    verify_inputs(config)
    announce(config)


rule all:
    input:
        final_targets,
    default_target: True
