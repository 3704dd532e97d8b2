"""The report: the quick preset's HTML site, LaTeX/PDF paper and Snakemake report.

The artifacts come from the session's quick run (real pipeline output, small); the browser
check uses Debian's headless Chromium, the PDF check poppler's pdftotext (.ci/run installs
both: a missing tool fails here, it is not skipped).
"""

from __future__ import annotations

import dataclasses
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import QUICK, ROOT, snakemake

from cnnrepro import cards, fingerprint, paths, report, studies
from cnnrepro import config as cfg
from cnnrepro.claims import VERDICTS
from cnnrepro.formats import fmt_value, mean_std_n, rst_text
from cnnrepro.io import ArtifactError, recording_reads
from cnnrepro.report import ReportError, collect, render_html, render_latex
from cnnrepro.spec import enabled_studies
from cnnrepro.studies import figures_for

SCRIPTS = ROOT / "workflow" / "scripts"

pytestmark = pytest.mark.e2e
NUMBER = r"-?[\d.]+(e[-+]\d+)?"
MEAN_STD_N = re.compile(rf"^({NUMBER}|–) ± ({NUMBER}|–)( \S+|%)? \(n=\d+\)$")  # –: no value


class Links(html.parser.HTMLParser):
    """Image sources, link targets and claim rows of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.claim_rows, self.cells = [], [], [], []
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "tr" and attrs.get("id"):
            self.claim_rows.append(attrs["id"])
            self._row = attrs["id"]
        elif tag == "td" and self._row:
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append((self._row, " ".join("".join(self._cell).split())))
            self._cell = None
        elif tag == "tr":
            self._row = None


def parse(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text())
    return parser


def enabled(workdir: Path) -> list[str]:
    return enabled_studies(cfg.load(ROOT / "config.yaml", [QUICK]))


def test_every_page_image_and_link_resolves(quick_run):
    workdir, _ = quick_run
    site = workdir / "results/report"
    pages = [site / "index.html"] + [site / f"{s}.html" for s in enabled(workdir)]
    for page in pages:
        found = parse(page)
        for target in found.images + found.links:
            url = urlparse(target)
            assert not url.scheme and not url.netloc, f"{page.name}: non-local link {target}"
            if url.path:
                assert (site / url.path).is_file(), f"{page.name}: broken link {target}"
    vdk = parse(site / "vdk.html")
    assert sorted(Path(i).stem for i in vdk.images) == sorted(figures_for("vdk"))


def test_the_fallback_and_chance_level_models_are_named_where_they_are_shown(quick_run):
    workdir, _ = quick_run
    site = workdir / "results/report"
    used = json.loads((workdir / paths.run_file("train_meta", "caltech", "vgg19", 0)).read_text())
    assert used["weights_used"].startswith("fallback")  # no ImageNet weights here
    concepts = html.unescape((site / "concepts.html").read_text())
    gradcam = concepts.split('id="concepts_gradcam"')[1].split("</figure>")[0]
    assert "caltech/vgg19: test accuracy" in gradcam and "VGG19 fallback" in gradcam
    assert "VGG19 fallback" in (site / "paper.tex").read_text()
    for study in enabled(workdir):  # every card's flag agrees with the run's own accuracy
        page = html.unescape((site / f"{study}.html").read_text())
        for card in re.findall(r"(\w+/\w+): test accuracy ([\d.]+) % \(.*?chance ([\d.]+) %\)"
                               r"[^.]*\.( AT CHANCE)?", page):
            _, accuracy, chance, flagged = card
            above = float(accuracy) - float(chance)  # in points, printed to 0.1
            if abs(above - 5.0) > 0.1:  # the margin is 5 points (config.yaml)
                assert bool(flagged) == (above < 5.0), card


def test_claims_table_has_every_claim_as_mean_std_n(quick_run):
    workdir, _ = quick_run
    claims = pd.read_csv(workdir / "results/vdk/claims/claims.csv")
    page = parse(workdir / "results/report/vdk.html")
    assert page.claim_rows == claims["claim_id"].tolist()
    reproduced = [text.split(" per seed")[0] for row, text in page.cells
                  if MEAN_STD_N.match(text.split(" per seed")[0])]
    assert len(reproduced) == len(claims), page.cells[:8]


def test_every_checked_figure_lists_its_sanity_claims_in_the_page_and_the_paper(quick_run):
    """A figure registered with ``checks`` shows, under its caption, each claim of the
    study's table whose id starts with one of them, with its verdict: in the HTML page (a
    link to the claim's row) and in the paper's caption."""
    from cnnrepro.formats import latex_escape

    workdir, _ = quick_run
    site = workdir / "results/report"
    tex = (site / "paper.tex").read_text()
    shown = 0
    for study in ("vdk", "caltech", "concepts", "mnist"):
        claims = pd.read_csv(workdir / f"results/{study}/claims/claims.csv")
        page = (site / f"{study}.html").read_text()
        figures = re.findall(r'<figure id="([^"]+)"[^>]*>(.*?)</figure>', page, re.S)
        for name, body in figures:
            prefixes = figures_for(study)[name].checks
            expected = claims[[c.startswith(prefixes) for c in claims["claim_id"]]]
            assert ("Sanity checks:" in body) == (len(expected) > 0), (study, name)
            for claim, verdict in zip(expected["claim_id"], expected["verdict"]):
                assert f'<a href="#{claim}"><code>{claim}</code></a>' in body
                after = body.split(f"<code>{claim}</code>")[1][:200]
                assert f">{verdict}</span>" in after, (name, claim)
                assert f"\\texttt{{{latex_escape(claim)}}}: {verdict}" in tex, claim
                shown += 1
    assert shown >= 8  # map checks of four studies, attack checks of two


def test_overview_counts_four_verdict_kinds_matching_claims_csv(quick_run):
    workdir, _ = quick_run
    text = (workdir / "results/report/index.html").read_text()
    assert "claims: holds / does not hold / inconclusive / not comparable" in text
    found = re.findall(r'<td class="verdict-counts">(.*?)</td>', text, flags=re.S)
    assert len(found) == len(enabled(workdir))  # one cell per study, in the overview's order
    total = dict.fromkeys(VERDICTS, 0)
    for study, cell in zip(enabled(workdir), found):
        if not studies.get(study).has_claims:
            continue
        verdicts = pd.read_csv(workdir / f"results/{study}/claims/claims.csv")["verdict"]
        shown = dict(re.findall(r'class="verdict [a-z-]+">([a-z ]+)</span> (\d+)', cell))
        assert list(shown) == list(VERDICTS), cell  # all four kinds, zeros included
        assert {v: int(n) for v, n in shown.items()} == {
            v: int((verdicts == v).sum()) for v in VERDICTS}, study
        for v in VERDICTS:
            total[v] += int((verdicts == v).sum())
    # the quick preset departs from every document: most claims are not comparable, and
    # none of them is printed red
    assert total["not comparable"] > total["does not hold"]
    summary = re.search(r'id="verdict-summary">(.*?)</p>', text, flags=re.S).group(1)
    assert (f"{total['not comparable']} of {sum(total.values())} claims are not comparable "
            "under preset quick") in summary


PAYLOADS = ["<script>alert(1)</script>", ".. raw:: html\n\n   <b id=raw>raw</b>",
            "x\n\n.. include:: /etc/hostname\n", "`go <javascript:alert(1)>`_",
            "javascript:alert(1)", "**bold** ``lit`` :math:`x` |sub| [#]_ _`target`",
            "ε ± 0.5 % (x') - x = -eps"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_config_text_is_inert_in_snakemakes_report(payload):
    """Captions reach docutils (raw and include enabled in Snakemake's report) through
    rst_text: the text comes out as text, no element, directive or link forms."""
    from docutils.core import publish_parts

    body = publish_parts(rst_text(payload), writer="html")["body"]
    assert "<script" not in body and "<b id" not in body and "<a " not in body
    assert "<strong" not in body and "<code" not in body and "system-message" not in body
    text = html.unescape(re.sub(r"<[^>]+>", "", body))  # a file included would add text
    assert " ".join(text.split()) == " ".join(payload.split())
    if "raw::" in payload:  # what the payload does unescaped
        assert "<b id" in publish_parts(payload, writer="html")["body"]


def test_a_preset_name_is_a_plain_name():
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    config["preset"] = "<script>alert(1)</script>"
    with pytest.raises(cfg.ConfigError, match="preset"):
        cfg.validate(config)


def test_number_format():
    # the spread sets the precision: two digits of the std, the mean to the same place
    assert mean_std_n(72.5, 0.31, 3, "%") == "72.50 ± 0.31% (n=3)"
    assert mean_std_n(0.690213, 0.00712, 2) == "0.6902 ± 0.0071 (n=2)"
    assert mean_std_n(156.5, 29.0, 2) == "156 ± 29 (n=2)"
    assert mean_std_n(0.1435, float("nan"), 1) == "0.1435 ± – (n=1)"
    assert mean_std_n(1.0, 0.0, 2) == "1 ± 0 (n=2)"
    assert MEAN_STD_N.match(mean_std_n(1.5, 0.2, 2, "pp"))
    # counts stay whole, small numbers keep four significant digits
    assert fmt_value(799078.0) == "799078" and fmt_value(0.01915) == "0.01915"
    assert fmt_value(1.23456e-5) == "1.235e-05" and fmt_value(98.94) == "98.94"


def test_disabled_study_is_absent_and_missing_artifact_is_named(quick_run, tmp_path):
    workdir, _ = quick_run
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    for study in config["studies"]:  # every study but vdk
        config["studies"][study]["enabled"] = study == "vdk"
    config["studies"]["vdk"]["attribution"]["images_per_class"] = 0  # a figure left out
    copy = tmp_path / "results"  # the vdk study's summaries, figures and data provenance
    shutil.copytree(workdir / "results/vdk", copy / "vdk",
                    ignore=shutil.ignore_patterns("*.pt", "*.npz", "snapshots"))
    shutil.copytree(workdir / "results/report/vdk", copy / "report/vdk")
    shutil.copytree(workdir / "results/data/cifar10", copy / "data/cifar10",
                    ignore=shutil.ignore_patterns("*.npz"))
    render_html(collect(config, tmp_path, ROOT), tmp_path)  # complete: renders
    site = copy / "report"
    assert {p.name for p in site.glob("*.html")} == {"index.html", "vdk.html"}
    assert "mnist.html" not in (site / "index.html").read_text()
    page = (site / "vdk.html").read_text()  # the left-out figure is said to be left out
    gallery = studies.figures_for("vdk")["vdk_attribution_gallery"]
    assert 'id="vdk_attribution_gallery" class="absent"' in page
    assert "not drawn. " + gallery.absent_for(config["studies"]["vdk"]) in html.unescape(page)
    assert "vdk_attribution_gallery.png" not in page
    png = site / "vdk/vdk_immune.png"
    good = png.read_bytes()
    png.unlink()
    with pytest.raises(ReportError, match="vdk_immune.png"):
        collect(config, tmp_path, ROOT)
    png.write_bytes(good[:200])  # a truncated PNG is not linked
    with pytest.raises(ArtifactError, match="vdk_immune.png: not a readable image"):
        collect(config, tmp_path, ROOT)
    png.write_bytes(good)
    summary = next(copy.rglob("metrics_summary.csv"))  # an accuracy of 150 % is not shown
    frame = pd.read_csv(summary)
    frame.loc[frame["metric"] == "accuracy", "mean"] = 1.5
    frame.to_csv(summary, index=False)
    with pytest.raises(ArtifactError, match="metrics_summary.csv: accuracy of .* is 1.5, "
                                            "not a rate"):
        collect(config, tmp_path, ROOT)
    frame.loc[frame["metric"] == "accuracy", "mean"] = 0.5
    frame.to_csv(summary, index=False)
    for meta in copy.glob("vdk/*/seed*/train.json"):  # every model at chance: each card says so
        record = json.loads(meta.read_text())
        meta.write_text(json.dumps({**record, "final": {**record["final"], "test_acc": 0.1}}))
    content = collect(config, tmp_path, ROOT)
    render_html(content, tmp_path)
    page = html.unescape((site / "vdk.html").read_text())
    assert 'id="vdk_fgsm_confusion" class="at-chance"' in page
    assert 'id="vdk_faithfulness">' in page  # drawn from a study table: no model card
    assert "vdk/vdk_cnnet: test accuracy 10.0 % (seed 0; chance 10.0 %), trained here. AT " \
           "CHANCE: this shows an untrained network" in page
    tex = render_latex(content, tmp_path / "paper.tex").read_text()
    assert "AT CHANCE: this shows an untrained network" in tex


def test_the_overview_names_artifacts_made_by_other_code(quick_run, tmp_path):
    workdir, _ = quick_run
    found = fingerprint.check(workdir / paths.RESULTS, SCRIPTS)
    assert found["checked"] > 20 and found["stale"] == []  # every job recorded its code
    index = (workdir / paths.report_index()).read_text()
    assert "artifacts that record their job's\ncode (cnnrepro.fingerprint) was made by the code" \
        in index
    run = Path(paths.run_dir("vdk", "vdk_cnnet", 0))
    (tmp_path / run / "eval").mkdir(parents=True)
    shutil.copyfile(workdir / run / "train.json", tmp_path / run / "train.json")
    record = json.loads((workdir / run / "eval/metrics.json").read_text())
    code = record["provenance"]["code"]
    assert code["script"] == "evaluate_model.py"
    record["provenance"]["code"] = {**code, "fingerprint": "0" * 16}  # made by other code
    (tmp_path / run / "eval/metrics.json").write_text(json.dumps(record))
    gone = {**code, "modules": ["cnnrepro.renamed_since"]}
    (tmp_path / run / "eval/cost.json").write_text(json.dumps({"provenance": {"code": gone}}))
    (tmp_path / run / "eval/listed.json").write_text("[1, 2]")  # not an artifact with code
    check = fingerprint.check(tmp_path / paths.RESULTS, SCRIPTS)
    assert check["checked"] == 3
    assert [(s["artifact"], s["made"], s["now"]) for s in check["stale"]] == [
        (f"{run}/eval/cost.json", code["fingerprint"], "its code is gone"),
        (f"{run}/eval/metrics.json", "0" * 16, code["fingerprint"])]
    content = collect(cfg.load(ROOT / "config.yaml", [QUICK]), workdir, ROOT)
    page = report._environment(latex=False).get_template("index.html.j2").render(
        **{**content, "code_check": check}, page=None)
    assert "2 of 3\nartifacts were made by other code than this report's" in page
    assert f"<code>{run}/eval/metrics.json</code>" in page


def _train_meta(root, study, model, seed, accuracy, classes=3, weights=None):
    path = root / paths.run_file("train_meta", study, model, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"final": {"test_acc": accuracy}, "weights_used": weights,
                                "classes": [f"c{i}" for i in range(classes)]}))


def _card(config, root, study, shown):
    return cards.caption(cards.cards(config, root, study, shown))


def test_a_model_card_gives_accuracy_chance_and_weights_and_flags_chance(tmp_path):
    config = {"report": {"chance_margin": 0.05}}
    _train_meta(tmp_path, "caltech", "cnn", 0, 0.35)
    _train_meta(tmp_path, "caltech", "cnn", 1, 0.37)
    _train_meta(tmp_path, "caltech", "vgg19", 0, 0.9, weights="fallback: random backbone")
    _train_meta(tmp_path, "mnist", "cnn", 0, 0.99, classes=10)
    card = _card(config, tmp_path, "concepts", [("caltech", "cnn", 0), ("caltech", "cnn", 1),
                                                     ("caltech", "vgg19", 0), ("mnist", "cnn", 0)])
    assert card.count("AT CHANCE") == 1 and "caltech/cnn: test accuracy 36.0 % (mean of seeds " \
        "[0, 1]; chance 33.3 %), borrowed from study caltech" in card
    assert "VGG19 fallback: random backbone: ImageNet weights unavailable" in card
    assert "mnist/cnn: test accuracy 99.0 % (seed 0; chance 10.0 %), borrowed" in card
    assert _card(config, tmp_path, "mnist", [("mnist", "cnn", 0)]).endswith("trained here.")
    assert _card(config, tmp_path, "mnist", []) == ""
    flag = cards.title_flag(cards.cards(config, tmp_path, "caltech", [("caltech", "cnn", 0)]))
    assert flag == "AT CHANCE (caltech/cnn): an untrained network"


def test_chromium_loads_every_page_without_failed_images(quick_run):
    workdir, _ = quick_run
    site = workdir / "results/report"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is part of the test environment (.ci/run installs it)"
    # A probe copy of each page (same folder, so the same relative paths) counts the images
    # the browser failed to decode once the page has loaded.
    probe = ("<script>window.addEventListener('load', () => { const bad = [...document.images]"
             ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src); "
             "document.body.setAttribute('data-images', document.images.length); "
             "document.body.setAttribute('data-failed', bad.join(' ') || 'none'); });</script>")
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    for name in ["index"] + enabled(workdir):
        page = site / f".probe-{name}.html"
        page.write_text((site / f"{name}.html").read_text().replace("</body>", probe + "</body>"))
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                 "--virtual-time-budget=10000"]
        dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                             text=True, timeout=120).stdout
        page.unlink()
        failed = re.search(r'data-failed="([^"]*)"', dom)
        assert failed, f"{name}: the page did not finish loading in Chromium"
        assert failed.group(1) == "none", f"{name}: images failed to load: {failed.group(1)}"
        if name != "index":
            count = int(re.search(r'data-images="(\d+)"', dom).group(1))
            assert count == len(figures_for(name)) + len(studies.get(name).animations)
        subprocess.run([browser, *flags, "--window-size=1280,2000",
                        f"--screenshot={artifacts / f'report-{name}.png'}",
                        (site / f"{name}.html").as_uri()], capture_output=True, timeout=120)
        assert (artifacts / f"report-{name}.png").stat().st_size > 10_000


def test_latex_paper_compiles_with_every_figure(quick_run):
    workdir, _ = quick_run
    pdf = workdir / "results/report/paper.pdf"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    expected = sum(len(figures_for(s)) for s in enabled(workdir))
    assert len(re.findall(r"^Figure \d+:", text, flags=re.M)) == expected
    assert "vdk.acc.vdk_cnnet" in text  # the claims table made it in
    tex = (workdir / "results/report/paper.tex").read_text()
    assert tex.count("\\includegraphics") == expected and "\\toprule" in tex


def test_snakemake_builtin_report(quick_run):
    workdir, _ = quick_run
    proc = snakemake(workdir, "--report", "results/report/snakemake-report.zip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(workdir / "results/report/snakemake-report.zip") as archive:
        pngs = [n for n in archive.namelist() if n.endswith(".png")]
    assert len(pngs) >= sum(len(figures_for(s)) for s in enabled(workdir))


def test_a_reason_for_no_verdict_is_given_once_and_referred_to(tmp_path):
    rows = [{"claim_id": f"x.c{i}", "statement": "s", "protocol": "document",
             "paper_value": 0.5, "unit": "", "reproduced_mean": 0.4, "std": 0.01, "n": 2,
             "per_seed": "0:0.4;1:0.41", "verdict": verdict, "rule": "r", "reason": reason,
             "depends_on": "training", "deterministic": False, "rows_in_table": 4}
            for i, (verdict, reason) in enumerate([
                ("not comparable", "preset quick: training.epochs 1 instead of 6"),
                ("holds", ""), ("not comparable", "preset quick: training.epochs 1 instead of 6"),
                ("not comparable", "preset quick: subset.test 500 instead of all")])]
    pd.DataFrame(rows).to_csv(tmp_path / "claims.csv", index=False)
    claims, notes = report._claims(tmp_path / "claims.csv")
    assert notes == ["preset quick: training.epochs 1 instead of 6",
                     "preset quick: subset.test 500 instead of all"]
    assert [c["note"] for c in claims] == [1, None, 1, 2]
    # a truncated table parses (and would give a consistent summary): its row count tells
    text = (tmp_path / "claims.csv").read_text().splitlines()
    (tmp_path / "claims.csv").write_text("\n".join(text[:3]) + "\n")
    with pytest.raises(ArtifactError, match="claims.csv: holds 2 claim rows, but its stage "
                                            "wrote 4: truncated"):
        report._claims(tmp_path / "claims.csv")


QUICK_CONFIG = cfg.load(ROOT / "config.yaml", [QUICK])
QUICK_FIGURES = [(study.name, name) for study in studies.enabled(QUICK_CONFIG)
                 for name in studies.figures_for(study.name, QUICK_CONFIG["studies"][study.name])]


@pytest.mark.parametrize("study,name", QUICK_FIGURES, ids=[f"{s}-{n}" for s, n in QUICK_FIGURES])
def test_every_figure_reads_exactly_what_its_rule_declares(quick_run, study, name, monkeypatch,
                                                           tmp_path):
    """Every registered figure of every study, drawn again from the shared quick run: what
    its job opens (every artifact read goes through cnnrepro.io: its data and its model
    cards' training records) is its rule's inputs, no more (a changed artifact always
    redraws the figures that show it) and no less (a declared file it never reads would
    rerun it for nothing, or hide a name that points at the wrong file)."""
    workdir, _ = quick_run
    monkeypatch.chdir(workdir)
    declared = {os.path.normpath(p) for p in studies.figure_inputs(study, name, QUICK_CONFIG)}
    with recording_reads() as read:
        studies.render(study, name, QUICK_CONFIG, tmp_path / "f.png", tmp_path / "f.pdf")
    plt.close("all")
    assert read == declared, ("undeclared:", sorted(read - declared),
                              "unread:", sorted(declared - read))
    assert (tmp_path / "f.png").stat().st_size > 0


def test_a_changed_title_or_deviation_renders_the_report_again(quick_run, tmp_path):
    workdir, _ = quick_run
    overlay = tmp_path / "retitled.yaml"
    overlay.write_text("studies: {caltech: {title: Another title}}\n"
                       "deviation_notes: {seeds: one more sentence}\n")
    proc = snakemake(workdir, "-n", configfiles=(QUICK, str(overlay)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"^render_report\s+1$", out, re.M), out[-3000:]
    assert not re.search(r"^(train_model|evaluate_model|figure)\s", out, re.M), out[-3000:]


def test_a_study_page_lists_the_departures_of_the_studies_it_borrows_models_from(quick_run):
    def key(name):
        return {"key": name, "change": "x", "note": ""}
    assert report.departs_in(key("seeds"), "mnist")  # run-level: on every page
    assert not report.departs_in(key("studies.vdk.training.epochs"), "concepts")
    assert report.departs_in(key("studies.vdk.training.epochs"), "concepts", ["vdk"])
    assert not report.departs_in(key("studies.vdkx.epochs"), "concepts", ["vdk"])
    workdir, _ = quick_run
    borrows = studies.get("concepts").borrows(QUICK_CONFIG)
    assert "vdk" in borrows
    page = html.unescape((workdir / paths.report_page("concepts")).read_text())
    assert f"studies whose trained models it borrows: {', '.join(borrows)}):" in \
        " ".join(page.split())
    assert "<code>studies.vdk.training.epochs</code>" in page


def test_a_model_description_says_what_the_run_trained_differently():
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    gap = report._described(config, "concepts")["gap"]
    options = config["studies"]["concepts"]["models"]["gap"]["options"]
    full = cfg.load(ROOT / "config.yaml")["studies"]["concepts"]["models"]["gap"]["options"]
    assert options["channels"] != full["channels"]  # the quick preset's smaller GAP model
    assert gap.endswith(f"(this run: options.channels {json.dumps(options['channels'])} "
                        f"instead of {json.dumps(full['channels'])})")
    assert "(this run" not in report._described(cfg.load(ROOT / "config.yaml"), "concepts")["gap"]


PAYLOAD = r"\input{/etc/hostname}<script>alert(1)</script>"


def _poisoned(value, key=""):
    """Every text of the report's content with the campaign's payload appended, but the
    names the code makes or checks: a figure's file name (``pdf``), the study (a registry
    key) and the verdicts (a closed vocabulary; anything else is an error)."""
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value, **{f.name: _poisoned(getattr(value, f.name), f.name)
                                            for f in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {k: _poisoned(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_poisoned(v, key) for v in value]
    made = ("pdf", "study", "verdict")
    return value + PAYLOAD if isinstance(value, str) and key not in made else value


def test_no_config_or_artifact_text_becomes_markup_in_the_pages_or_the_paper(quick_run,
                                                                             tmp_path):
    workdir, _ = quick_run
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    content = collect(config, workdir, ROOT)
    content = {**content, "pages": _poisoned(content["pages"]),
               "provenance": _poisoned(content["provenance"])}
    tex = render_latex(content, tmp_path / "paper.tex").read_text()
    assert r"\input{" not in tex
    escaped = r"\textbackslash{}input\{/etc/hostname\}"
    assert tex.count(escaped) > 100  # titles, captions, claims, hashes, notes: all escaped
    shutil.copytree(workdir / "results", tmp_path / "site" / "results",
                    ignore=shutil.ignore_patterns("*.pt", "*.npz", "snapshots", "*.png"))
    for written in render_html(content, tmp_path / "site"):
        text = written.read_text()
        assert "<script>alert(1)" not in text, written.name
        assert "&lt;script&gt;alert(1)" in text, written.name
