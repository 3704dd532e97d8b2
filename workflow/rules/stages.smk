# Every study's stages after (or without) training, one rule each, built from the stage's
# declaration beside its function (cnnrepro.study.Stage; cnnrepro.rules): the rule is
# named <stage>_<study>, its inputs are what the stage reads, its outputs what it writes.
# `snakemake --list-rules` lists them; docs/development.md shows how to add one.
from cnnrepro import rules as stage_rules

for _study, _stage in stage_rules.all_stages():

    rule:
        name:
            _study.rule(_stage)
        input:
            unpack(stage_rules.inputs(config, _study, _stage)),
        output:
            **stage_rules.outputs(_study, _stage),
        log:
            stage_rules.log(_study, _stage),
        benchmark:
            stage_rules.benchmark(_study, _stage)
        wildcard_constraints:
            **stage_rules.constraints(_study, _stage),
        localrule: _stage.local
        conda:
            "../../envs/pipeline.yaml"
        threads: stage_rules.threads(config, _stage)
        resources:
            **stage_rules.resources(config, _stage),
        params:
            **stage_rules.params(config, _study, _stage),
            code=job_code("stage.py", _stage.run.__module__),
        script:
            "../scripts/stage.py"
