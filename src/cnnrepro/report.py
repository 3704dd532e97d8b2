"""The report: one HTML site and one LaTeX paper from the studies' data files and figures.

:func:`collect` gathers what the report shows for each enabled study (configuration used,
data checksums, figures, tables, claims) and the run's provenance; :func:`render_html` and
:func:`render_latex` fill the jinja2 templates in ``report/templates``. Nothing here
computes a result: numbers come from the stages' CSV/JSON files, figures from each
study's ``figures`` module (:mod:`cnnrepro.studies`). Paths come from :mod:`cnnrepro.paths`,
relative to ``root`` (the workflow's working directory).
"""

from __future__ import annotations

import json
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
from PIL import Image

from . import cards as model_cards
from . import config as cfg
from . import fingerprint, paths
from . import studies as registry
from .aggregate import METRICS, check_rates
from .claims import NOT_COMPARABLE, check_rows, verdict_counts
from .datasets import SPECS
from .formats import fmt_value, latex_escape, mean_std_n
from .io import artifact_error, atomic_path, read_benchmark, read_csv, read_json
from .ledger import across_runs, trained_on
from .ledger import read as read_ledger
from .provenance import git_commit, versions

TEMPLATES = Path(__file__).resolve().parents[2] / "report" / "templates"


class ReportError(RuntimeError):
    """An enabled study lacks an artifact the report shows."""


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
    absent: list[dict[str, str]] = field(default_factory=list)  # figures the run left out
    animations: list[dict[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # reasons for no verdict, once each
    borrows: list[str] = field(default_factory=list)  # studies whose trained models it uses

    @property
    def counts(self) -> dict[str, int]:
        """Claims per verdict, every kind present (zero included)."""
        return _verdict_counts(self.claims)


def _verdict_counts(claims: list[dict[str, Any]]) -> dict[str, int]:
    try:
        return verdict_counts([c["verdict"] for c in claims])
    except ValueError as err:
        raise ReportError(str(err)) from None


def _relative(path: str) -> str:
    """A report file's link from the pages beside it (``results/report/``)."""
    return str(Path(path).relative_to(paths.report_dir()))


def _need(path: Path) -> Path:
    if not path.is_file():
        raise ReportError(f"missing artifact for the report: {path}")
    return path


def _need_image(path: Path) -> Path:
    """A figure the report links: present and decodable (a broken PNG is never linked)."""
    try:
        with Image.open(_need(path)) as img:
            img.verify()
    except (OSError, SyntaxError, ValueError) as err:  # PIL's errors for a bad file
        raise artifact_error(path, f"not a readable image ({type(err).__name__}: {err})") from err
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
    frame = read_csv(path)
    return Table(path.stem, caption, list(frame.columns),
                 [[fmt_value(v) for v in row] for row in frame.itertuples(index=False)],
                 csv=f"{study}/data/{path.name}")


def _text(value: Any) -> str:
    """A text cell of a CSV read by pandas: empty (NaN) or absent becomes ``""``."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _claims(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The claims rows, and the reasons for no verdict once each (a claim refers to its
    reason by number: one preset's departures would otherwise repeat under every row)."""
    rows, notes = [], []
    # the paper's value as the study wrote it: the document's own literal, not re-rounded
    frame = read_csv(path, dtype={"paper_value": str})
    problem = check_rows(frame)
    if problem:
        raise artifact_error(path, problem)
    for r in frame.to_dict("records"):
        unit = "" if pd.isna(r["unit"]) else r["unit"]
        reason = _text(r.get("reason"))
        if reason and reason not in notes:
            notes.append(reason)
        rows.append({**r, "unit": unit, "reproduced": mean_std_n(r["reproduced_mean"], r["std"],
                                                                 r["n"], unit),
                     "paper": (_text(r["paper_value"]) or "–") + (unit if unit == "%" else ""),
                     "per_seed": str(r["per_seed"]).replace(";", ", "),
                     "reason": reason, "note": notes.index(reason) + 1 if reason else None,
                     "depends_on": _text(r.get("depends_on")).replace(";", ", ")})
    return rows, notes


def _datasets(root: Path, dataset: str) -> list[dict[str, Any]]:
    found = []
    for split in SPECS[dataset].splits:
        prov = read_json(_need(root / paths.data(dataset, split, "json")))
        found.append({"split": prov["split"], "count": prov["count"],
                      "source": prov["source"]["kind"],
                      "sha256": prov["source"].get("sha256", {}),
                      "note": prov["source"].get("note", "")})
    return found


def _described(config: dict[str, Any], study: str) -> dict[str, str]:
    """Each model's description, with what this run trained differently from the
    ``config.yaml`` the description was written for (a preset's smaller model)."""
    changed = cfg.departures(config, study)
    found = {}
    for model, spec in config["studies"][study]["models"].items():
        own = [f"{key.split('.', 2)[2]} {text}" for key, text in changed.items()
               if key.startswith(f"models.{model}.options.")]
        found[model] = spec.get("description", "") + (
            f" (this run: {'; '.join(own)})" if own else "")
    return found


def study_page(config: dict[str, Any], study: registry.Study, root: Path) -> StudyPage:
    sspec = config["studies"][study.name]
    models, seeds = list(sspec["models"]), list(config["seeds"])
    files = study.study_files(config, str(root))
    page = StudyPage(
        study=study.name, title=sspec.get("title") or study.name,
        document=sspec.get("document", ""),
        models=_described(config, study.name), seeds=seeds,
        config_yaml=yaml.safe_dump({"seeds": seeds, study.name: sspec}, sort_keys=False),
        datasets=_datasets(root, sspec["dataset"]),
        borrows=study.borrows(config) if study.borrows else [])
    if study.has_claims:
        page.claims, page.notes = _claims(_need(files.file("claims")))
    further = registry.seed_figures(study.name, config)
    for name, figure in registry.figures_for(study.name, sspec).items():
        _need_image(root / paths.figure(study.name, name))
        others = [{"seed": seed, "png": _relative(paths.figure(study.name, name, "png", seed)),
                   "pdf": _relative(paths.figure(study.name, name, "pdf", seed))}
                  for n, seed in further if n == name]
        for other in others:
            _need_image(root / paths.report_dir() / other["png"])
        found = model_cards.cards(config, root, study.name,
                                  registry.shown_models(study.name, name, config))
        page.figures.append({"name": name, "caption": figure.caption_for(sspec),
                             "card": model_cards.caption(found),
                             "at_chance": any(c.at_chance for c in found),
                             "reproduces": figure.reproduces, "seed": seeds[0] if others else None,
                             **registry.lineage(study.name, name),
                             "other_seeds": others,
                             "checks": [c for c in page.claims
                                        if c["claim_id"].startswith(figure.checks)],
                             "png": f"{study.name}/{name}.png", "pdf": f"{study.name}/{name}.pdf"})
    page.absent = [{"name": name, "reproduces": figure.reproduces,
                    "note": figure.absent_for(sspec) or "not drawn under this configuration"}
                   for name, figure in registry.absent_figures(study.name, sspec).items()]
    for name, caption in study.animations.items():
        _need_image(root / paths.figure(study.name, name, "gif"))
        page.animations.append({"name": name, "caption": caption,
                                "gif": f"{study.name}/{name}.gif"})
    summary = read_csv(_need(files.file("metrics_summary")))
    check_rates(summary, files.file("metrics_summary"), "mean")
    page.tables.append(_metrics_table(summary, models, study.name))
    for table in study.tables:
        page.tables.append(_csv_table(_need(files.file(table.file)), study.name, table.caption))
    return page


def page_csvs(config: dict[str, Any], study: registry.Study, root: Path) -> list[Path]:
    """The study's tables linked from its page (copied beside it)."""
    files = study.study_files(config, str(root))
    names = ["metrics_summary", *[t.file for t in study.tables]]
    return [files.file(n) for n in names + (["claims"] if study.has_claims else [])]


# The report's own jobs: their times are written after the pages, so a page never shows
# them (else the same files would render to another page once the run is over).
REPORT_RULES = ("report", "report_pdf")


def stage_times(root: Path) -> list[dict[str, Any]]:
    """Wall time per rule, summed over its jobs, from Snakemake's benchmark files (but the
    report's own, :data:`REPORT_RULES`)."""
    rows = []
    bench = root / paths.benchmarks_dir()
    for rule_dir in sorted(p for p in bench.iterdir() if p.is_dir()) if bench.is_dir() else []:
        files = list(rule_dir.rglob("*.tsv"))
        seconds = sum(read_benchmark(f) or 0.0 for f in files)
        rows.append({"stage": rule_dir.name, "jobs": len(files), "seconds": round(seconds, 1)})
    rows += [{"stage": f.stem, "jobs": 1, "seconds": round(read_benchmark(f) or 0.0, 1)}
             for f in sorted(bench.glob("*.tsv")) if f.stem not in REPORT_RULES]
    return rows


def run_provenance(config: dict[str, Any], root: Path, workflow_dir: Path) -> dict[str, Any]:
    devices, train_versions = trained_on(config, root)
    return {"git_commit": git_commit(workflow_dir), "versions": train_versions or versions(),
            "devices": devices, "preset": config.get("preset", "full"),
            "deviations": cfg.run_departures(config),
            "stage_times": stage_times(root)}


def collect(config: dict[str, Any], root: str | Path = ".", workflow_dir: str | Path = ".",
            pdf: bool = True) -> dict[str, Any]:
    """Everything the templates show; raises :class:`ReportError` naming a missing artifact.

    ``root`` holds ``results/``; ``pdf`` says whether paper.pdf will be built beside the
    pages (TeX installed).
    """
    root = Path(root)
    pages = [study_page(config, study, root) for study in registry.enabled(config)]
    return {"pages": pages, "pdf": pdf, "config": config,
            "verdicts": verdict_summary(pages, config.get("preset", "full")),
            "provenance": run_provenance(config, root, Path(workflow_dir)),
            "code_check": fingerprint.check(root / paths.RESULTS,
                                            Path(workflow_dir) / "workflow" / "scripts")}


def verdict_summary(pages: list[StudyPage], preset: str) -> dict[str, Any]:
    """The run's verdicts in one line for the top of the overview: how many claims this run
    could test at all (a quick preset tests almost none, and says so instead of showing a
    wall of red)."""
    counts = _verdict_counts([c for p in pages for c in p.claims])
    total, untested = sum(counts.values()), counts[NOT_COMPARABLE]
    if not total:
        line = "No claims table in this run."
    elif untested == total:
        line = (f"No claim was tested: all {total} verdicts are not comparable, because preset "
                f"{preset} departs from the documents' settings that produced their numbers.")
    elif untested:
        line = (f"{untested} of {total} claims are not comparable under preset {preset} (its "
                f"settings depart from those behind the documents' numbers); only the other "
                f"{total - untested} were judged.")
    else:
        line = f"Every one of the {total} claims was judged under the documents' settings."
    return {"counts": counts, "total": total, "line": line}


# --------------------------------------------------------------------------- rendering

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
    env.tests["of_study"] = departs_in
    return env


def departs_in(departure: dict[str, str], study: str, borrows: list[str] = ()) -> bool:
    """A run departure a study page lists: the study's own keys, the run-level ones, and
    those of the studies whose trained models it borrows (``borrows``: a borrowed model
    trained for fewer epochs moves the study's numbers as its own settings do)."""
    key = departure["key"]
    return (not key.startswith("studies.")
            or any(key.startswith(f"studies.{name}.") for name in [study, *borrows]))


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def render_html(content: dict[str, Any], root: str | Path = ".") -> list[Path]:
    """index.html plus one page per study; the studies' tables are copied beside them."""
    root = Path(root)
    out_dir = root / paths.report_dir()
    env = _environment(latex=False)
    written = [root / paths.report_index()]
    _write_text(written[0], env.get_template("index.html.j2").render(**content, page=None))
    for page in content["pages"]:
        study = registry.get(page.study)
        for csv in page_csvs(content["config"], study, root):
            with atomic_path(out_dir / page.study / "data" / csv.name) as tmp:
                shutil.copyfile(csv, tmp)
        path = root / paths.report_page(page.study)
        _write_text(path, env.get_template("study.html.j2").render(**content, page=page))
        written.append(path)
    return written


def render_across_runs(config: dict[str, Any], root: str | Path = ".") -> Path:
    """The page "claims across runs" from the ledger: written at the end of a run, after
    the ledger took its verdicts (not by a job: the ledger grows after the report's job,
    and as a job's input it would make every next run render the report again)."""
    root = Path(root)
    records, problems = read_ledger(root / paths.ledger())
    names = [study.name for study in registry.enabled(config)]
    table = across_runs(records, names)
    for row in table["rows"]:
        for cell in filter(None, row["cells"]):
            mean, std = (math.nan if cell.get(k) is None else cell[k] for k in ("mean", "std"))
            cell["shown"] = mean_std_n(mean, std, cell.get("n") or 0, cell.get("unit") or "")
    path = root / paths.report_across()
    # a run's own report, where its results tree still holds it (the tree's newest run)
    newest = {c["results"]: c["run"] for c in sorted(table["columns"], key=lambda c: c["ended"] or "")}
    own = Path(paths.report_index()).relative_to(paths.RESULTS)
    for column in table["columns"]:
        index = root / (column["results"] or paths.RESULTS) / own
        column["report"] = (os.path.relpath(index, path.parent) if index.is_file()
                            and newest[column["results"]] == column["run"] else None)
    _write_text(path, _environment(latex=False).get_template("across.html.j2").render(
        table=table, problems=problems, studies=names, ledger=paths.ledger(), page=None,
        pages=[{"study": name} for name in names], pdf=(root / paths.paper("pdf")).is_file()))
    return path


def write_config(config: dict[str, Any], path: str | Path) -> None:
    """The run's merged config as YAML, keys in the config's order (:func:`paths.run_config`);
    through JSON first, as the ledger hashes it, so that what is read back hashes the same."""
    plain = json.loads(json.dumps(config, default=str))
    _write_text(Path(path), yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))


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
