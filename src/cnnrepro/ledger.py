"""The ledger: what each run concluded, one JSON line per claim, kept across runs.

A results tree holds one configuration, and the next preset overwrites it; the ledger
(``ledger/claims.jsonl`` beside ``results/``, :func:`cnnrepro.paths.ledger`) keeps every
run's verdicts. At the end of a run, finished or stopped, each claims table that the run
wrote adds one record per claim (a run that rewrote no claims table adds none, so running
again with nothing to do records nothing twice). Lines are only ever appended; the file is
rewritten atomically under a lock, so two runs ending together both land and a crash
leaves the old file. A line that does not parse is reported, with its number, and skipped:
never fatal. Fields, in each record:

  run        when the run started and its config's hash: ``20261205T221203-3f9a1c2e``
  ended      when the run ended (UTC, ISO 8601)
  preset     the config's preset (``full`` without one)
  config     16 hex digits of the SHA-256 of the merged config
  commit     the git commit of the workflow, ``dirty`` whether tracked files differed
  code       the fingerprint of the whole package (:func:`cnnrepro.fingerprint.package`)
  devices    what trained its models (their ``train.json`` provenance)
  seeds      the config's seeds
  results    the folder of its results tree (config key ``results``)
  study, claim, protocol, statement, paper_value, unit: the claim
  mean, std, n, verdict: what the run measured and concluded (null where not a number)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

from . import fingerprint, paths
from . import studies as registry
from .io import atomic_path, read_csv, read_json
from .provenance import git_commit

CLAIM_FIELDS = {"claim": "claim_id", "protocol": "protocol", "statement": "statement",
                "paper_value": "paper_value", "unit": "unit", "mean": "reproduced_mean",
                "std": "std", "n": "n", "verdict": "verdict"}


def config_hash(config: dict[str, Any]) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_id(config: dict[str, Any], started: dt.datetime) -> str:
    return f"{started:%Y%m%dT%H%M%S}-{config_hash(config)[:8]}"


def trained_on(config: dict[str, Any], root: str | Path = ".", missing_ok: bool = False
               ) -> tuple[list[str], dict | None]:
    """The devices that trained the enabled studies' models, and the package versions of
    the first training record (each run's ``train.json`` provenance; ``missing_ok``: of
    those that exist, as in a run that stopped)."""
    devices, versions = set(), None
    for study in registry.enabled(config):
        for train_json in study.study_files(config, str(root)).runs("train_meta").values():
            if not missing_ok or Path(train_json).is_file():
                prov = read_json(train_json)["provenance"]
                devices.add(prov.get("device", "unknown"))
                versions = versions or prov.get("versions")
    return sorted(devices), versions


def _plain(value: Any) -> Any:
    """A CSV cell as JSON: numbers as numbers, NaN and empty cells as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(config: dict[str, Any], root: str | Path, run: str, ended: dt.datetime,
            since: float | None = None, workflow_dir: str | Path = ".") -> list[dict[str, Any]]:
    """One record per claim of each enabled study's claims table (``since``: only tables
    written at or after that time, as a Unix time); the commit is ``workflow_dir``'s (the
    checkout the Snakefile is in, which need not be the working directory)."""
    root = Path(root)
    commit = git_commit(workflow_dir)
    common = {"run": run, "ended": ended.isoformat(timespec="seconds"),
              "preset": config.get("preset", "full"), "config": config_hash(config),
              "commit": commit.removesuffix("-dirty"), "dirty": commit.endswith("-dirty"),
              "code": fingerprint.package(), "devices": trained_on(config, root, missing_ok=True)[0],
              "results": paths.RESULTS,
              "seeds": list(config["seeds"])}
    found = []
    for study in registry.enabled(config):
        table = root / paths.study_file("claims", study.name)
        if not study.has_claims or not table.is_file() or (
                since is not None and table.stat().st_mtime < since):
            continue
        for row in read_csv(table).to_dict("records"):
            found.append({**common, "study": study.name,
                          **{key: _plain(row.get(column)) for key, column in CLAIM_FIELDS.items()}})
    return found


def append(path: str | Path, new: Iterable[dict[str, Any]]) -> int:
    """Add ``new`` to the ledger at ``path``; returns how many were added."""
    new = [json.dumps(record, sort_keys=True) + "\n" for record in new]
    if not new:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # runs ending together append one after the other
        old = path.read_bytes() if path.is_file() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"  # a line cut short stays one bad line, not two
        with atomic_path(path) as tmp:
            tmp.write_bytes(old + "".join(new).encode())
    return len(new)


def read(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The ledger's records in order, and one message per line that is not a record."""
    path = Path(path)
    if not path.is_file():
        return [], []
    found, problems = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not {"run", "claim", "verdict"} <= set(record):
                raise ValueError("not a claim record (run, claim and verdict are required)")
        except ValueError as err:
            problems.append(f"{path}:{number}: skipped, {err}")
            continue
        found.append(record)
    return found, problems


def changes(ledger: list[dict[str, Any]], run: str
            ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The run ``run`` is compared with, and each claim whose verdict differs between the two
    (``claim``, ``protocol``, ``before``, ``after``). That run is the last earlier run of the
    same preset; for a preset's first run, the last earlier run of any preset (so a cpu run
    after a quick one says what the larger run changed). It is returned as ``{"run",
    "preset"}``, or None when the ledger holds no earlier run."""
    mine = [r for r in ledger if r["run"] == run]
    if not mine:
        return None, []
    preset, ended = mine[0].get("preset"), mine[0].get("ended") or ""
    earlier = [r for r in ledger if r["run"] != run and (r.get("ended") or "") <= ended]
    if not earlier:
        return None, []
    previous = ([r for r in earlier if r.get("preset") == preset] or earlier)[-1]
    before = {(r["claim"], r.get("protocol")): r["verdict"] for r in ledger
              if r["run"] == previous["run"]}
    return ({"run": previous["run"], "preset": previous.get("preset")},
            [{"claim": r["claim"], "protocol": r.get("protocol"),
              "before": before[(r["claim"], r.get("protocol"))], "after": r["verdict"]}
             for r in mine if before.get((r["claim"], r.get("protocol")),
                                         r["verdict"]) != r["verdict"]])


# Columns of the across-runs table, by compute: the presets in the order they cost (others
# after them), then by when the run ended.
PRESET_ORDER = ("quick", "cpu", "document", "full")


def across_runs(ledger: list[dict[str, Any]], studies: list[str]) -> dict[str, Any]:
    """The ledger as a table: one column per recorded run, ordered by compute, one row per
    (study, claim, protocol) of ``studies``; a cell is that run's value and verdict (None:
    not recorded), marked ``changed`` where its verdict differs from the row's previous
    cell."""
    runs: dict[str, dict[str, Any]] = {}
    cells: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    statements = {}
    for record in ledger:
        if record.get("study") not in studies:
            continue
        runs.setdefault(record["run"], {key: record.get(key) for key in
                                        ("run", "preset", "ended", "commit", "dirty",
                                         "devices", "seeds", "results")})
        key = (record["study"], record["claim"], record.get("protocol", ""))
        cells.setdefault(key, {})[record["run"]] = record
        statements[key] = record.get("statement", "")
    rank = {preset: i for i, preset in enumerate(PRESET_ORDER)}
    columns = sorted(runs.values(), key=lambda r: (rank.get(r["preset"], len(rank)),
                                                   r["ended"] or ""))
    rows = []
    for key in sorted(cells, key=lambda k: (studies.index(k[0]), k[1], k[2])):
        row, last = [], None
        for column in columns:
            record = cells[key].get(column["run"])
            if record is not None:
                row.append({**record, "changed": last is not None and record["verdict"] != last})
                last = record["verdict"]
            else:
                row.append(None)
        rows.append({"study": key[0], "claim": key[1], "protocol": key[2],
                     "statement": statements[key], "cells": row})
    return {"columns": columns, "rows": rows}


def summary_lines(path: str | Path, run: str, added: int) -> list[str]:
    """What the end-of-run summary says of the ledger: what was recorded, and which
    verdicts changed since the run it is compared with (see ``changes``)."""
    if not added:
        return [f"  ledger   nothing recorded: this run wrote no claims table ({path})"]
    ledger, problems = read(path)
    lines = [f"  ledger   {added} claims recorded as run {run} in {path}"]
    lines += [f"    {problem}" for problem in problems]
    previous, changed = changes(ledger, run)
    if previous is None:
        lines.append("    the first run in the ledger")
        return lines
    preset = next(r.get("preset") for r in ledger if r["run"] == run)
    since = (f"the last run of this preset ({previous['run']})" if previous["preset"] == preset
             else f"the last run, of preset {previous['preset']} ({previous['run']}); "
                  f"this is the first {preset} run")
    if not changed:
        lines.append(f"    no verdict changed since {since}")
    else:
        lines.append(f"    {len(changed)} verdict{'s' if len(changed) > 1 else ''} changed since "
                     f"{since}:")
        lines += [f"      {c['claim']} ({c['protocol']}): {c['before']} -> {c['after']}"
                  for c in changed]
    return lines
