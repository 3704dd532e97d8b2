"""The ledger of verdicts across runs: records, appends, bad lines, changed verdicts."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading

import pandas as pd
from conftest import QUICK, ROOT

from cnnrepro import config as cfg
from cnnrepro import fingerprint, ledger, paths, report

ENDED = dt.datetime(2026, 12, 5, 22, 0, tzinfo=dt.timezone.utc)


def claims_table(root, study, verdicts):
    path = root / paths.study_file("claims", study)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"claim_id": [f"{study}.c{i}" for i in range(len(verdicts))],
                  "statement": "s", "protocol": "paper", "paper_value": 98.9, "unit": "%",
                  "reproduced_mean": [97.0, float("nan")][:len(verdicts)], "std": None,
                  "n": 1, "verdict": verdicts}).to_csv(path, index=False)
    return path


def test_a_runs_records_carry_the_run_and_each_claim(tmp_path):
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    claims_table(tmp_path, "mnist", ["holds", "not comparable"])
    run = ledger.run_id(config, dt.datetime(2026, 12, 5, 21, 50))
    assert run.startswith("20261205T215000-") and len(run) == 24
    found = ledger.records(config, tmp_path, run, ENDED)
    assert [(r["study"], r["claim"], r["verdict"], r["mean"]) for r in found] == [
        ("mnist", "mnist.c0", "holds", 97.0), ("mnist", "mnist.c1", "not comparable", None)]
    first = found[0]
    assert first["preset"] == "quick" and first["seeds"] == config["seeds"]
    assert first["config"] == ledger.config_hash(config) and first["std"] is None
    assert first["code"] == fingerprint.package() and first["ended"] == "2026-12-05T22:00:00+00:00"
    json.dumps(found, allow_nan=False)  # plain JSON: no NaN
    # only the tables this run wrote
    assert ledger.records(config, tmp_path, run, ENDED, since=ENDED.timestamp() + 1e9) == []


def test_appends_keep_every_line_and_a_bad_line_is_reported_not_fatal(tmp_path):
    path = tmp_path / "ledger" / "claims.jsonl"
    record = {"run": "r1", "claim": "a", "verdict": "holds", "preset": "quick",
              "protocol": "paper", "ended": "1"}
    assert ledger.append(path, [record]) == 1 and ledger.append(path, []) == 0
    with path.open("a") as handle:
        handle.write('{"run": "r1", "claim": "b"')  # a line cut short by a crash
    threads = [threading.Thread(target=ledger.append, args=(path, [{**record, "run": f"t{i}"}]))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found, problems = ledger.read(path)
    assert [r["run"] for r in found][0] == "r1" and len(found) == 9  # none lost
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: skipped")
    path.write_text("[1]\n")
    assert "not a claim record" in ledger.read(path)[1][0]


def test_the_summary_names_the_verdicts_that_changed_since_the_last_run_of_the_preset(tmp_path):
    """A run is compared with the last run of its preset; a preset's first run with the last
    run of any preset."""
    path = tmp_path / "claims.jsonl"

    def run(name, preset, ended, verdicts):
        ledger.append(path, [{"run": name, "preset": preset, "ended": ended, "claim": claim,
                              "protocol": "paper", "verdict": verdict}
                             for claim, verdict in verdicts.items()])

    run("q1", "quick", "1", {"a": "holds", "b": "holds"})
    assert ledger.summary_lines(path, "q1", 2)[1] == "    the first run in the ledger"
    run("c1", "cpu", "2", {"a": "does not hold", "b": "holds"})
    assert ledger.summary_lines(path, "c1", 2)[1:] == [
        "    1 verdict changed since the last run, of preset quick (q1); this is the first cpu run:",
        "      a (paper): holds -> does not hold"]
    run("q2", "quick", "3", {"a": "holds", "b": "holds"})
    assert "no verdict changed since the last run of this preset (q1)" in \
        ledger.summary_lines(path, "q2", 2)[1]
    run("q3", "quick", "4", {"a": "does not hold", "b": "holds", "new": "holds"})
    lines = ledger.summary_lines(path, "q3", 3)
    assert lines[0] == f"  ledger   3 claims recorded as run q3 in {path}"
    assert lines[1:] == ["    1 verdict changed since the last run of this preset (q2):",
                         "      a (paper): holds -> does not hold"]
    assert "nothing recorded" in ledger.summary_lines(path, "q4", 0)[0]


def test_the_across_runs_page_orders_runs_by_compute_and_marks_changed_verdicts(tmp_path):
    config = cfg.load(ROOT / "config.yaml", [QUICK])
    path = tmp_path / paths.ledger()

    def run(name, preset, ended, verdict, mean, results="results"):
        ledger.append(path, [{"run": name, "preset": preset, "ended": ended, "study": "mnist",
                              "results": results,
                              "claim": "mnist.acc.cnn", "protocol": "paper", "statement": "acc",
                              "mean": mean, "std": None, "n": 1, "unit": "%",
                              "verdict": verdict, "commit": "abcdef0123", "dirty": False,
                              "devices": ["cpu: x86_64, 1 threads"]}])

    run("c1", "cpu", "2026-12-05T10:00:00", "holds", 98.7, results="results-cpu")
    run("q1", "quick", "2026-12-05T09:00:00", "not comparable", 83.8)
    run("q2", "quick", "2026-12-05T11:00:00", "not comparable", 84.1)
    run("g1", "gpu-full", "2026-12-05T08:00:00", "holds", 99.0)  # a preset of one's own: last
    run("old", "quick", "2026-12-01T00:00:00", "holds", 99.0)
    ledger.append(path, [{"run": "x", "preset": "quick", "ended": "0", "study": "lenet",
                          "claim": "other", "verdict": "holds"}])  # lenet: not enabled here
    config["studies"]["lenet"]["enabled"] = False
    table = ledger.across_runs(ledger.read(path)[0], ["mnist"])
    assert [c["run"] for c in table["columns"]] == ["old", "q1", "q2", "c1", "g1"]
    (row,) = table["rows"]
    assert [c["changed"] for c in row["cells"]] == [False, True, False, True, False]
    with path.open("a") as handle:
        handle.write("not json\n")
    page = report.render_across_runs(config, tmp_path).read_text()
    assert page.count('<td class="changed">') == 2
    assert "84.10 ± –% (n=1)" in page
    assert f"{path.relative_to(tmp_path)}:7: skipped" in page  # the bad line, said
    assert '<option>mnist</option>' in page and "<option>lenet</option>" not in page
    assert 'href="across-runs.html" class="here"' in page
    # each column links to its own report while its results tree holds it: the tree's newest
    for tree in ("results", "results-cpu"):
        (tmp_path / tree / "report").mkdir(parents=True, exist_ok=True)
        (tmp_path / tree / "report" / "index.html").write_text("<html></html>")
    page = report.render_across_runs(config, tmp_path).read_text()
    links = re.findall(r'<th><a href="([^"]+)">(\w+)</a>', page)
    assert links == [("index.html", "quick"), ("../../results-cpu/report/index.html", "cpu")]
