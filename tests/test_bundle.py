"""``./repro bundle`` and ``./repro verify`` (cnnrepro.bundle): what a bundle takes, that it
is the same bytes for the same run, and that verification finds an edited metrics file, a
deleted figure and a forged verdict, naming each."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from rocrate.rocrate import ROCrate

from cnnrepro import bundle, paths
from cnnrepro.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def results_here(monkeypatch):
    """Keep the results folder, which :func:`paths.use` sets for the process, as it was."""
    monkeypatch.setattr(paths, "RESULTS", "results")
    monkeypatch.setenv(paths.RESULTS_ENV, "results")


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_bundle_leaves_out_weights_dataset_arrays_and_bookkeeping(tmp_path, results_here):
    run = tmp_path / "results" / "vdk" / "cnn" / "seed0"
    kept = [write(run / "history.csv"), write(run / "eval" / "metrics.json"),
            write(run / "explain" / "maps.npz"), write(tmp_path / "results/data/mnist/test.json")]
    weights = [write(run / "model.pt"), write(run / "snapshots" / "epoch1.pt")]
    for left_out in (run / ".writer", run / "snapshots" / ".snakemake_timestamp",
                     tmp_path / "results/data/mnist/test.npz", run / ".metrics.json.ab12.tmp"):
        write(left_out)
    assert bundle.selected(tmp_path) == sorted(kept)
    assert bundle.selected(tmp_path, weights=True) == sorted(kept + weights)


def test_the_archive_is_the_same_bytes_for_the_same_files_whenever_they_were_written(tmp_path):
    source = write(tmp_path / "a.csv", "1,2\n")
    members = {"results/a.csv": source, "ledger/claims.jsonl": b'{"run": "r"}\n'}
    bundle.write_archive(tmp_path / "one.tar.gz", "top", members, mtime=1_700_000_000)
    os.utime(source, (1, 1))  # another time stamp, the same content
    bundle.write_archive(tmp_path / "two.tar.gz", "top", members, mtime=1_700_000_000)
    one, two = (tmp_path / "one.tar.gz").read_bytes(), (tmp_path / "two.tar.gz").read_bytes()
    assert one == two
    source.write_text("1,3\n")
    bundle.write_archive(tmp_path / "three.tar.gz", "top", members, mtime=1_700_000_000)
    assert (tmp_path / "three.tar.gz").read_bytes() != one
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        assert tar.getnames() == ["top/ledger/claims.jsonl", "top/results/a.csv"]
        assert {m.mtime for m in tar.getmembers()} == {1_700_000_000}


def test_the_manifest_check_names_changed_missing_and_unlisted_files(tmp_path):
    top = tmp_path / "b"
    files = {name: write(top / name, name) for name in ("r/a.csv", "r/b.png", "r/c.json")}
    (top / bundle.MANIFEST).write_text("".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {n}\n" for n, p in files.items()))
    assert bundle.check_manifest(top) == []
    files["r/a.csv"].write_text("edited")
    files["r/b.png"].unlink()
    write(top / "r" / "new.txt")
    with (top / bundle.MANIFEST).open("a") as f:
        f.write("not a line\n")
    problems = bundle.check_manifest(top)
    assert problems[0] == f"{bundle.MANIFEST}:4: not a 'sha256  path' line"
    assert problems[1:3] == ["r/b.png: missing (in the manifest, not in the bundle)",
                             "r/new.txt: not in the manifest"]
    assert problems[3].startswith("r/a.csv: changed: SHA-256 expected ")
    assert len(problems) == 4


def test_claims_are_compared_by_claim_and_protocol_naming_what_differs():
    row = {"claim_id": "a", "protocol": "paper", "verdict": "holds", "reproduced_mean": 1.0,
           "std": float("nan"), "n": 2}
    assert bundle.compare_claims("t.csv", [row], [{**row, "reproduced_mean": 1.0 + 1e-12,
                                                   "std": None}]) == []
    problems = bundle.compare_claims(
        "t.csv", [row], [{**row, "verdict": "does not hold"},
                         {**row, "protocol": "clean"}])
    assert problems == ["t.csv: a (clean): missing, present in the recomputed table",
                        "t.csv: a (paper): verdict expected holds, found does not hold in the "
                        "recomputed table"]


def test_a_study_an_earlier_run_wrote_keeps_that_runs_config_hash(tmp_path, results_here):
    """A run that changed nothing a study reads leaves its claims table, and its ledger
    records, to the earlier run that wrote them: their config hash is that run's. Only the
    bundle's own run (the last record's) must carry the bundled config's hash."""
    from cnnrepro import ledger

    config = {"studies": {"caltech": {"enabled": True}, "vdk": {"enabled": True}}}
    rows = {"caltech": ("caltech.a", "holds", 1.0), "vdk": ("vdk.b", "does not hold", 2.0)}
    for study, (claim, verdict, mean) in rows.items():
        table = tmp_path / paths.study_file("claims", study)
        table.parent.mkdir(parents=True)
        pd.DataFrame([{"claim_id": claim, "protocol": "ours", "verdict": verdict,
                       "reproduced_mean": mean, "std": None, "n": 2}]).to_csv(table, index=False)
    here = ledger.config_hash(config)

    def record(study: str, run: str, config_hash: str) -> dict:
        claim, verdict, mean = rows[study]
        return {"run": run, "config": config_hash, "study": study, "claim": claim,
                "protocol": "ours", "verdict": verdict, "mean": mean}

    earlier = [record("caltech", "r1-old", "0ld0ld0ld0ld0ld0"), record("vdk", "r2", here)]
    assert bundle.check_ledger(config, tmp_path, earlier) == []
    forged = [record("caltech", "r1", here), record("vdk", "r2", "0ld0ld0ld0ld0ld0")]
    assert bundle.check_ledger(config, tmp_path, forged) == [
        f"{paths.ledger()}: config hash expected {here} (of {paths.run_config()}), "
        "found 0ld0ld0ld0ld0ld0"]


# --- a bundle of the quick run --------------------------------------------------------------

def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop(paths.RESULTS_ENV, None)
    return subprocess.run([sys.executable, "-m", "cnnrepro.bundle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def quick_bundle(quick_run, tmp_path_factory) -> Path:
    """The quick run's tree bundled twice: the two archives must be the same bytes."""
    workdir, _ = quick_run
    out = tmp_path_factory.mktemp("bundle")
    made = [cli("bundle", "-o", str(out / f"{i}.tar.gz"), cwd=workdir) for i in (1, 2)]
    assert all(p.returncode == 0 for p in made), made[0].stderr
    assert (out / "1.tar.gz").read_bytes() == (out / "2.tar.gz").read_bytes()
    return out / "1.tar.gz"


@pytest.mark.e2e
def test_a_bundle_of_the_quick_run_verifies_from_another_folder(quick_bundle, tmp_path):
    into = tmp_path / "checked"
    proc = cli("verify", str(quick_bundle), "--into", str(into), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "claims recomputed by this checkout's rules: 0 mismatches" in proc.stdout
    assert proc.stdout.rstrip().endswith("every check agrees")
    if not git_commit(ROOT).endswith("-dirty"):  # as in CI: the run's commit is this one
        assert re.search(r"the report was rendered again: (\d+) of \1 pages equal", proc.stdout)
    top = next(into.iterdir())
    # the manifest is sha256sum's format, and covers every file but itself
    listed = (top / bundle.MANIFEST).read_text().splitlines()
    assert subprocess.run(["sha256sum", "--check", "--quiet", bundle.MANIFEST], cwd=top,
                          capture_output=True).returncode == 0
    files = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()}
    assert len(listed) == len(files) - 1
    assert not [f for f in files if f.endswith(".pt") or f.endswith(".npz") and "/data/" in f]
    # the RO-Crate metadata reads back with the library, naming the run's config
    crate = ROCrate(top)
    assert crate.dereference(paths.run_config()) is not None
    run = crate.dereference("#run")
    assert run["object"].id == paths.run_config() and run["instrument"]["name"] == "cnnrepro"
    assert len(crate.root_dataset["citation"]) >= 1


def unpacked(bundle_file: Path, where: Path) -> Path:
    with tarfile.open(bundle_file) as tar:
        tar.extractall(where, filter="data")
    return next(where.iterdir())


@pytest.mark.e2e
def test_verify_names_an_edited_metrics_file_and_a_deleted_figure(quick_bundle, tmp_path,
                                                                 results_here, capsys):
    top = unpacked(quick_bundle, tmp_path / "bundle")
    metrics = next(top.rglob("eval/metrics.json"))
    found = json.loads(metrics.read_text())
    found["splits"]["test"]["accuracy"] = 0.999
    metrics.write_text(json.dumps(found))
    figure = next(top.rglob("report/*/*.png"))
    figure.unlink()
    problems = bundle.verify(top, tmp_path / "checked", ROOT)
    names = {p.split(": ")[0] for p in problems}
    assert metrics.relative_to(top).as_posix() in names
    assert any(p.startswith(f"{figure.relative_to(top).as_posix()}: missing") for p in problems)
    # named by its path in the bundle, not in the folder verify copied it into
    assert any(p.startswith("the report cannot be rendered")
               and p.endswith(f": {figure.relative_to(top).as_posix()}") for p in problems)


@pytest.mark.e2e
def test_verify_recomputes_a_forged_verdict_even_with_its_hash_updated(quick_bundle, tmp_path,
                                                                      results_here):
    top = unpacked(quick_bundle, tmp_path / "bundle")
    table = next(top.rglob("mnist/claims/claims.csv"))
    claims = pd.read_csv(table)
    forged = claims.index[claims["verdict"] != "holds"][0]
    was = claims.loc[forged, "verdict"]
    claims.loc[forged, "verdict"] = "holds"
    claims.to_csv(table, index=False)
    name = table.relative_to(top).as_posix()
    manifest = top / bundle.MANIFEST
    manifest.write_text("".join(
        f"{bundle.sha256(table)}  {name}\n" if line.endswith(f"  {name}") else f"{line}\n"
        for line in manifest.read_text().splitlines()))
    problems = bundle.verify(top, tmp_path / "checked", ROOT)
    claim = f"{claims.loc[forged, 'claim_id']} ({claims.loc[forged, 'protocol']})"
    said = f"{name}: {claim}: verdict expected holds, found {was}"
    assert f"{said} in the recomputed table" in problems
    assert f"{said} in the ledger ({paths.ledger()})" in problems
    assert not [p for p in problems if "changed: SHA-256" in p]
