# The report: one job per figure (data files -> PNG + PDF; a per-seed figure once more per
# further seed), then the HTML site and the LaTeX source, then the PDF where TeX exists.
# All local rules: seconds each, so on a cluster they run on the submitting node instead
# of waiting in the queue as batch jobs of their own.


rule figure:
    input:
        lambda w: studies.figure_inputs(w.study, w.figure, config),
    output:
        png=report(
            paths.figure(),
            caption="../../report/figure_caption.rst",
            category="{study}",
            labels={"study": "{study}", "figure": "{figure}"},
        ),
        pdf=paths.figure(ext="pdf"),
    log:
        paths.log("figure", "{study}", "{figure}"),
    benchmark:
        paths.benchmark("figure", "{study}", "{figure}")
    wildcard_constraints:
        study="|".join(STUDIES),
        figure=r"[a-z0-9_]+",
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    threads: resources_of("report", "threads")
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
        gpu=resources_of("report", "gpu"),
    params:
        # inert RST: captions carry config values (cnnrepro.formats.rst_text)
        caption=lambda w: rst_text(
            studies.figures_for(w.study)[w.figure].caption_for(config["studies"][w.study])
        ),
        reproduces=lambda w: rst_text(studies.figures_for(w.study)[w.figure].reproduces),
        code=lambda w: job_code("render_figure.py", studies.figures_for(w.study)[w.figure].module),
    script:
        "../scripts/render_figure.py"


use rule figure as figure_seed with:
    input:
        lambda w: studies.figure_inputs(w.study, w.figure, config, int(w.seed)),
    output:
        png=report(
            paths.figure(seed="{seed}"),
            caption="../../report/figure_caption.rst",
            category="{study}",
            labels={"study": "{study}", "figure": "{figure}", "seed": "{seed}"},
        ),
        pdf=paths.figure(ext="pdf", seed="{seed}"),
    log:
        paths.log("figure", "{study}", "{figure}-seed{seed}"),
    benchmark:
        paths.benchmark("figure", "{study}", "{figure}-seed{seed}")
    wildcard_constraints:
        study="|".join(STUDIES),
        figure=r"[a-z0-9_]+",
        seed=r"\d+",


rule render_report:
    input:
        report_inputs,
    output:
        index=paths.report_index(),
        pages=[paths.report_page(study) for study in STUDIES],
        tex=paths.paper("tex"),
        config=paths.run_config(),
    log:
        paths.log("report"),
    benchmark:
        paths.benchmark("report")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
    params:
        workflow_dir=workflow.basedir,
        pdf=HAVE_TEX,
        # the pages print the config (titles, descriptions, deviations, each study's block,
        # the data source): a change to any of it renders them again
        shown=config,
        code=job_code("render_report.py", *(f"cnnrepro.studies.{s}" for s in STUDIES)),
    script:
        "../scripts/render_report.py"


rule report_pdf:
    input:
        tex=paths.paper("tex"),
        figures=lambda w: report_figures("pdf"),
    output:
        paths.paper("pdf"),
    log:
        paths.log("report_pdf"),
    benchmark:
        paths.benchmark("report_pdf")
    localrule: True
    conda:
        "../../envs/pipeline.yaml"
    threads: 1
    resources:
        mem_mb=resources_of("report", "mem_mb"),
        runtime=resources_of("report", "runtime"),
    params:
        code=job_code("build_pdf.py"),
    script:
        "../scripts/build_pdf.py"
