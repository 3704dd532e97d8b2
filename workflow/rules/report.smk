# The report: one job per figure (data files -> PNG + PDF), then the HTML site and the
# LaTeX source, then the PDF where a TeX installation exists.


rule figure:
    input:
        lambda w: figures.figure_inputs(w.study, w.figure, study_models(w.study), SEEDS),
    output:
        png=report(
            "results/report/{study}/{figure}.png",
            caption="../../report/figure_caption.rst",
            category="{study}",
            labels={"study": "{study}", "figure": "{figure}"},
        ),
        pdf="results/report/{study}/{figure}.pdf",
    params:
        models=lambda w: study_models(w.study),
        seeds=SEEDS,
        caption=lambda w: study_figures(w.study)[w.figure].caption,
        reproduces=lambda w: study_figures(w.study)[w.figure].reproduces,
    wildcard_constraints:
        study="|".join(STUDIES),
        figure=r"[a-z0-9_]+",
    log:
        "results/logs/figure/{study}/{figure}.log",
    benchmark:
        "results/benchmarks/figure/{study}/{figure}.tsv"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=res("report", "gpu"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/render_figure.py"


rule render_report:
    input:
        report_inputs,
    output:
        index="results/report/index.html",
        pages=expand("results/report/{study}.html", study=STUDIES),
        tex="results/report/paper.tex",
    params:
        claim_studies=[s for s in STUDIES if s in CLAIMS],
        workflow_dir=workflow.basedir,
        pdf=HAVE_TEX,
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/render_report.py"


rule report_pdf:
    input:
        tex="results/report/paper.tex",
        figures=lambda w: report_figures("pdf"),
    output:
        "results/report/paper.pdf",
    log:
        "results/logs/report_pdf.log",
    benchmark:
        "results/benchmarks/report_pdf.tsv"
    threads: 1
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/pipeline.yaml"
    script:
        "../scripts/build_pdf.py"
