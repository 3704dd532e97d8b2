"""Snakemake adapter: the HTML site and the LaTeX source (see cnnrepro.report)."""
from pathlib import Path

from cnnrepro.logs import log_to

with log_to(snakemake.log[0]):
    from cnnrepro.report import collect, render_html, render_latex

    out = Path(snakemake.output.index).parent
    results = out.parent
    content = collect(snakemake.config, results, snakemake.params.claim_studies,
                      snakemake.params.workflow_dir, pdf=snakemake.params.pdf)
    render_html(content, out, results)
    render_latex(content, snakemake.output.tex)
    if not snakemake.params.pdf:
        print(f"latexmk not found: wrote {snakemake.output.tex} only. To build the PDF, install "
              "TeX (Debian: latexmk texlive-latex-recommended texlive-fonts-recommended) and "
              f"run: cd {out} && latexmk -pdf paper.tex")
