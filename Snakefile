# Reproduction pipeline of five CNN studies: a table of contents.
# Stages: data -> train -> evaluate -> aggregate -> study analyses (vdk so far).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/vdk.smk"


onstart:
    verify_inputs(config)
    announce(config)


rule all:
    input:
        final_targets,
    default_target: True
