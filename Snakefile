# Reproduction pipeline of five CNN studies: a table of contents.
# Stages: data -> train -> evaluate -> aggregate -> each study's declared stages -> report.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stages.smk"
include: "workflow/rules/lenet.smk"
include: "workflow/rules/report.smk"


# Before the first job: the estimate of the jobs to run (a dry run prints it too), then the
# checks; after the last: where the report is and what the claims came to; on failure: the
# failed job's log and the command that resumes (cnnrepro.runinfo).
runinfo.preview(workflow, config)


onstart:
    locks.claim_run(workflow)  # refused while a live run writes what this one would
    runinfo.start(workflow, config)
    locks.record_owner()  # lets ./repro tell a stale lock after a crash
    verify_inputs(config)


onsuccess:
    runinfo.success(workflow, config)  # the verdicts go to the ledger
    render_across_runs(config)


onerror:
    runinfo.failure(workflow, config)


rule all:
    default_target: True
    input:
        final_targets,
