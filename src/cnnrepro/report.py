"""The report: one HTML site and one LaTeX paper from the studies' data files and figures.

:func:`collect` gathers what the report shows for each enabled study (configuration used,
data checksums, figures, tables, claims) and the run's provenance; :func:`render_html` and
:func:`render_latex` fill the jinja2 templates in ``report/templates``. Nothing here
computes a result: numbers come from the stages' CSV/JSON files, figures from
:mod:`cnnrepro.figures`.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from . import config as cfg
from .figures import ANIMATIONS, figures_for
from .io import atomic_path, read_json
from .provenance import git_commit, versions

TEMPLATES = Path(__file__).resolve().parents[2] / "report" / "templates"
SUMMARY_TABLES = {  # per study: (file in results/<study>/summary, caption)
    "lenet": [("grid.csv", "Every grid point of both models: learning rate, weight decay, "
               "validation and test accuracy after the grid's epochs (lenet.grid).")],
    "mnist": [("structure.csv", "Every layer of both models: input and output shape, learnable "
               "parameters, neurons (conv outputs before pooling, FC outputs) and kind "
               "(mnist.shapes, mnist.params, mnist.neurons); totals and shares are claims.")],
    "vdk": [("cost.csv", "Parameters, multiply-accumulates (MACs) and CPU inference latency "
             "per image batch (vdk.cost; the paper claims a low computational burden)."),
            ("paired_tests.csv", "Paired comparisons over seeds (one-sided t-test on per-seed "
             "differences; p is empty when n < 2)."),
            ("faithfulness.csv", "Deletion and insertion AUC per model and attribution method, "
             "mean, std and count over seeds.")],
}
METRICS = ("accuracy", "precision", "recall", "f1")


class ReportError(RuntimeError):
    """An enabled study lacks an artifact the report shows."""


def fmt_value(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def mean_std_n(mean: float, std: float, n: int, unit: str = "", digits: int = 4) -> str:
    """The report's one number format: ``mean ± std (n)``; std is ``–`` for a single seed."""
    unit = f" {unit}" if unit and unit != "%" else unit
    return f"{fmt_value(mean, digits)} ± {fmt_value(std, digits)}{unit} (n={int(n)})"


@dataclass
class Table:
    name: str
    caption: str
    columns: list[str]
    rows: list[list[str]]
    csv: str | None = None  # relative link to the full data


@dataclass
class StudyPage:
    study: str
    title: str
    document: str
    models: dict[str, str]
    seeds: list[int]
    config_yaml: str
    datasets: list[dict[str, Any]]
    figures: list[dict[str, str]] = field(default_factory=list)
    animations: list[dict[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ReportError(f"missing artifact for the report: {path}")
    return path


def _metrics_table(summary: pd.DataFrame, models: list[str], study: str) -> Table:
    rows = []
    for model in models:
        for split in ("train", "val", "test"):
            part = summary[(summary["model"] == model) & (summary["split"] == split)]
            if part.empty or not set(METRICS) <= set(part["metric"]):
                continue
            by = part.set_index("metric")
            rows.append([model, split] + [mean_std_n(100 * by.loc[m, "mean"],
                                                     100 * by.loc[m, "std"], by.loc[m, "n"])
                                          for m in METRICS])
    return Table("metrics", "Accuracy, macro precision, recall and F1 (%) per model and split, "
                 "mean ± std over seeds (n seeds); per-seed values in the CSV.",
                 ["model", "split", *METRICS], rows, csv=f"{study}/data/metrics_summary.csv")


def _csv_table(path: Path, study: str, caption: str) -> Table:
    frame = pd.read_csv(path)
    return Table(path.stem, caption, list(frame.columns),
                 [[fmt_value(v) for v in row] for row in frame.itertuples(index=False)],
                 csv=f"{study}/data/{path.name}")


def _claims(path: Path) -> list[dict[str, Any]]:
    rows = []
    for r in pd.read_csv(path).to_dict("records"):
        unit = "" if pd.isna(r["unit"]) else r["unit"]
        rows.append({**r, "unit": unit, "reproduced": mean_std_n(r["reproduced_mean"], r["std"],
                                                                 r["n"], unit),
                     "paper": fmt_value(r["paper_value"]) + (unit if unit == "%" else ""),
                     "per_seed": str(r["per_seed"]).replace(";", ", ")})
    return rows


def _datasets(results: Path, dataset: str) -> list[dict[str, Any]]:
    found = []
    for meta in sorted((results / "data" / dataset).glob("*.json")):
        prov = read_json(meta)
        found.append({"split": prov["split"], "count": prov["count"],
                      "source": prov["source"]["kind"],
                      "sha256": prov["source"].get("sha256", {}),
                      "note": prov["source"].get("note", "")})
    if not found:
        raise ReportError(f"missing artifact for the report: {results / 'data' / dataset}/*.json")
    return found


def study_page(config: dict[str, Any], study: str, results: Path, has_claims: bool) -> StudyPage:
    sspec = config["studies"][study]
    models, seeds = list(sspec["models"]), list(config["seeds"])
    root = results / study
    page = StudyPage(
        study=study, title=sspec.get("title") or study, document=sspec.get("document", ""),
        models={m: s.get("description", "") for m, s in sspec["models"].items()}, seeds=seeds,
        config_yaml=yaml.safe_dump({"seeds": seeds, study: sspec}, sort_keys=False),
        datasets=_datasets(results, sspec["dataset"]))
    for name, figure in figures_for(study, sspec).items():
        _need(results / "report" / study / f"{name}.png")
        page.figures.append({"name": name, "caption": figure.caption,
                             "reproduces": figure.reproduces,
                             "png": f"{study}/{name}.png", "pdf": f"{study}/{name}.pdf"})
    for name, caption in ANIMATIONS.get(study, {}).items():
        _need(results / "report" / study / f"{name}.gif")
        page.animations.append({"name": name, "caption": caption, "gif": f"{study}/{name}.gif"})
    page.tables.append(_metrics_table(pd.read_csv(_need(root / "summary" /
                                                        "metrics_summary.csv")), models, study))
    for file, caption in SUMMARY_TABLES.get(study, []) if has_claims else []:
        page.tables.append(_csv_table(_need(root / "summary" / file), study, caption))
    if has_claims:
        page.claims = _claims(_need(root / "summary" / "claims.csv"))
    return page


def stage_times(results: Path) -> list[dict[str, Any]]:
    """Wall time per rule, summed over its jobs, from Snakemake's benchmark files."""
    rows = []
    bench = results / "benchmarks"
    for rule_dir in sorted(p for p in bench.iterdir() if p.is_dir()) if bench.is_dir() else []:
        files = list(rule_dir.rglob("*.tsv"))
        seconds = sum(float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in files)
        rows.append({"stage": rule_dir.name, "jobs": len(files), "seconds": round(seconds, 1)})
    rows += [{"stage": f.stem, "jobs": 1, "seconds": round(float(
        pd.read_csv(f, sep="\t")["s"].iloc[0]), 1)} for f in sorted(bench.glob("*.tsv"))]
    return rows


def run_provenance(config: dict[str, Any], results: Path, workflow_dir: Path) -> dict[str, Any]:
    devices, train_versions = set(), None
    for train_json in sorted(results.glob("*/*/seed*/train.json")):
        prov = read_json(train_json)["provenance"]
        devices.add(prov.get("device", "unknown"))
        train_versions = train_versions or prov.get("versions")
    return {"git_commit": git_commit(workflow_dir), "versions": train_versions or versions(),
            "devices": sorted(devices), "preset": config.get("preset", "full"),
            "deviations": list(config.get("deviations", [])),
            "stage_times": stage_times(results)}


def collect(config: dict[str, Any], results: str | Path, claim_studies: list[str],
            workflow_dir: str | Path = ".", pdf: bool = True) -> dict[str, Any]:
    """Everything the templates show; raises :class:`ReportError` naming a missing artifact.

    ``pdf`` says whether paper.pdf will be built beside the pages (TeX installed).
    """
    results = Path(results)
    pages = [study_page(config, s, results, s in claim_studies)
             for s in cfg.enabled_studies(config)]
    return {"pages": pages, "pdf": pdf,
            "provenance": run_provenance(config, results, Path(workflow_dir))}


# --------------------------------------------------------------------------- rendering

LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "\\": r"\textbackslash{}", "±": r"$\pm$", "²": r"$^2$", "…": r"\ldots{}",
                 "→": r"$\to$", "×": r"$\times$", "–": "--", "≤": r"$\le$", "≥": r"$\ge$"}


def latex_escape(text: Any) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _environment(latex: bool) -> jinja2.Environment:
    if latex:  # LaTeX-friendly delimiters: braces and percent signs stay literal
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), block_start_string="((*",
            block_end_string="*))", variable_start_string="(((", variable_end_string=")))",
            comment_start_string="((#", comment_end_string="#))", undefined=jinja2.StrictUndefined,
            trim_blocks=True, lstrip_blocks=True)
        env.filters["e"] = latex_escape
    else:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                                 autoescape=True, undefined=jinja2.StrictUndefined)
    return env


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def render_html(content: dict[str, Any], out_dir: str | Path, results: str | Path) -> list[Path]:
    """index.html plus one page per study; the studies' summary CSVs are copied beside them."""
    out_dir, results = Path(out_dir), Path(results)
    env = _environment(latex=False)
    written = [out_dir / "index.html"]
    _write_text(written[0], env.get_template("index.html.j2").render(**content, page=None))
    for page in content["pages"]:
        for csv in (results / page.study / "summary").glob("*.csv"):
            with atomic_path(out_dir / page.study / "data" / csv.name) as tmp:
                shutil.copyfile(csv, tmp)
        path = out_dir / f"{page.study}.html"
        _write_text(path, env.get_template("study.html.j2").render(**content, page=page))
        written.append(path)
    return written


def render_latex(content: dict[str, Any], out_tex: str | Path) -> Path:
    out_tex = Path(out_tex)
    _write_text(out_tex, _environment(latex=True).get_template("paper.tex.j2").render(**content))
    return out_tex


def build_pdf(tex: str | Path, out_pdf: str | Path) -> Path:
    """Compile ``tex`` with latexmk in a scratch folder beside it; the PDF lands atomically."""
    tex, out_pdf = Path(tex).resolve(), Path(out_pdf)
    if shutil.which("latexmk") is None:
        raise ReportError("latexmk not found: install a TeX distribution (Debian: latexmk "
                          "texlive-latex-recommended) or build by hand: cd "
                          f"{tex.parent} && latexmk -pdf {tex.name}")
    build = tex.parent / ".latexmk"
    build.mkdir(exist_ok=True)
    proc = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
                           f"-outdir={build}", tex.name], cwd=tex.parent, capture_output=True,
                          text=True, env={**os.environ, "TEXINPUTS": f"{tex.parent}:"})
    if proc.returncode != 0:
        raise ReportError(f"latexmk failed on {tex}:\n{proc.stdout[-4000:]}")
    with atomic_path(out_pdf) as tmp:
        shutil.copyfile(build / f"{tex.stem}.pdf", tmp)
    return out_pdf
