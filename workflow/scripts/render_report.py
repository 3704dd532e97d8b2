"""Snakemake adapter: the HTML site, the LaTeX source and the config they show (see
cnnrepro.report)."""
from cnnrepro.fingerprint import job
from cnnrepro.logs import log_to

with log_to(snakemake.log[0]), job(snakemake.params.code):
    from cnnrepro.report import collect, render_html, render_latex, write_config

    content = collect(snakemake.config, ".", snakemake.params.workflow_dir,
                      pdf=snakemake.params.pdf)
    render_html(content)
    render_latex(content, snakemake.output.tex)
    write_config(snakemake.config, snakemake.output.config)
    if not snakemake.params.pdf:
        print(f"latexmk not found: wrote {snakemake.output.tex} only. To build the PDF, install "
              "TeX (Debian: latexmk texlive-latex-recommended texlive-fonts-recommended) and "
              f"run: cd {snakemake.output.tex.rsplit('/', 1)[0]} && latexmk -pdf paper.tex")
