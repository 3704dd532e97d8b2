"""A run as one archive that a reviewer checks without retraining: ``./repro bundle`` and
``./repro verify BUNDLE``.

A bundle (``bundles/<results>-<run>.tar.gz``) holds one folder of the same name::

    <results>/...            the results tree as the run left it: claims, metrics, histories,
                             figures, the report and the config it shows, logs, benchmarks;
                             without the weights (``*.pt``: ``--weights`` keeps them), the
                             prepared dataset arrays (their checksums stay, in the JSON beside
                             each) and hidden bookkeeping (training locks, Snakemake's markers)
    ledger/claims.jsonl      the ledger's records of the claims tables in the tree
    ro-crate-metadata.json   RO-Crate metadata, written with the ``rocrate`` library: every
                             file, the run (its config, commit, software versions, devices)
                             and the documents it reproduces
    MANIFEST.sha256          the SHA-256 of every other file (``sha256sum -c`` reads it)

The same tree bundles to the same bytes: entries sorted, their times set to the run's end,
owners and modes fixed, gzip without a time stamp.

:func:`verify` unpacks a bundle (or copies an unpacked one) into a fresh folder and checks
every file against the manifest; the config against this checkout's schema and against the
hash the ledger records of it; every verdict again, from the bundled metrics, by this
checkout's claims stages; the ledger's records against the claims tables; and renders the
report again from the bundle, page by page equal to the bundled one when the bundle was made
by this checkout's commit. Each mismatch is one line (file, claim, expected, found).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import math
import mimetypes
import os
import re
import shutil
import sys
import tarfile
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import yaml
from rocrate.rocrate import ROCrate

from . import config as cfg
from . import ledger, paths, report, rules
from . import studies as registry
from .datasets.sources import sha256
from .io import atomic_path, read_csv
from .provenance import git_commit
from .spec import ConfigError

MANIFEST = "MANIFEST.sha256"
CRATE = "ro-crate-metadata.json"
BUNDLES = Path("bundles")
# Claims values equal to this relative tolerance: the CSV round trip keeps 15-17 digits.
REL_TOL = 1e-9


class BundleError(RuntimeError):
    """A tree that cannot be bundled, or a bundle that cannot be read at all."""


def selected(root: Path, weights: bool = False) -> list[Path]:
    """The files of the results tree in ``root`` that a bundle takes, sorted: all but hidden
    ones (training locks, Snakemake's markers, half-written temporaries), the weights
    (``*.pt``, every torch file the pipeline writes) unless ``weights``, and the prepared
    dataset arrays (copies of public data; the JSON beside each keeps their checksums)."""
    tree, data = root / paths.RESULTS, root / paths.data_dir()
    found = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(tree).parts):
            continue
        if path.suffix == ".pt" and not weights:
            continue
        if path.suffix == ".npz" and path.is_relative_to(data):
            continue
        found.append(path)
    return found


def tree_records(records: list[dict[str, Any]], results: str) -> list[dict[str, Any]]:
    """The ledger's records of the claims tables now in the tree ``results``: per study,
    those of the last run that wrote its table (a later run may have rewritten one study
    only)."""
    newest: dict[str, str] = {}
    for record in records:
        if record.get("results") == results:
            newest[record["study"]] = record["run"]  # the ledger is in order of appending
    return [r for r in records if r.get("results") == results
            and newest.get(r["study"]) == r["run"]]


def run_commit(record: dict[str, Any]) -> str:
    """The commit a ledger record names, as :func:`cnnrepro.provenance.git_commit` spells it."""
    return record["commit"] + ("-dirty" if record["dirty"] else "")


def crate_metadata(files: dict[str, int], config: dict[str, Any],
                   records: list[dict[str, Any]], software: dict[str, str]) -> bytes:
    """``ro-crate-metadata.json``: every file (``files``: its size) with its format; the run
    as a CreateAction (its config the object, the workflow and packages the instrument,
    the devices and seeds described); the documents it reproduces, cited by the root."""
    last = records[-1]
    crate = ROCrate(gen_preview=False)
    crate.name = f"cnnrepro run {last['run']} (preset {last['preset']})"
    crate.description = (f"The results tree {last['results']!r} of the cnnrepro pipeline: "
                         "claims, metrics, histories, figures and report of its studies, "
                         "with the ledger's records of its verdicts.")
    crate.datePublished = last["ended"]
    for path, size in files.items():
        crate.add_file(dest_path=path, properties={
            "contentSize": size,
            "encodingFormat": mimetypes.guess_type(path)[0] or "application/octet-stream"})
    commit = run_commit(last)
    packages = [crate.add_jsonld({"@id": f"#software-{package}", "@type": "SoftwareApplication",
                                  "name": package, "version": version})
                for package, version in sorted(software.items())]
    workflow = crate.add_jsonld({
        "@id": "#cnnrepro", "@type": "SoftwareApplication", "name": "cnnrepro",
        "version": commit, "softwareRequirements": [{"@id": p.id} for p in packages]})
    crate.add_jsonld({
        "@id": "#run", "@type": "CreateAction", "name": f"run {last['run']}",
        "endTime": last["ended"], "instrument": {"@id": workflow.id},
        "object": {"@id": paths.run_config()}, "result": {"@id": "./"},
        "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"},
        "description": (f"preset {last['preset']}, seeds {last['seeds']}, config hash "
                        f"{last['config']}; trained on {', '.join(last['devices']) or '-'}")})
    documents = []
    for study in registry.enabled(config):
        block = config["studies"][study.name]
        if "document" in block:
            documents.append(crate.add_jsonld({
                "@id": f"#document-{block['document']}", "@type": "CreativeWork",
                "name": block.get("title", study.name), "identifier": block["document"]}))
    crate.root_dataset["citation"] = [{"@id": d.id} for d in documents]
    metadata = crate.metadata.generate()
    return (json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def write_archive(out: Path, top: str, members: dict[str, Path | bytes], mtime: int) -> None:
    """A gzipped tar of ``members`` (name under ``top`` -> file or bytes), byte for byte
    the same for the same members: sorted, one time, no owners, fixed modes, no gzip time."""
    with atomic_path(out) as tmp, tmp.open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            member = members[name]
            info = tarfile.TarInfo(f"{top}/{name}")
            info.mtime, info.mode, info.uid, info.gid = mtime, 0o644, 0, 0
            info.uname = info.gname = ""
            if isinstance(member, bytes):
                info.size = len(member)
                tar.addfile(info, io.BytesIO(member))
            else:
                info.size = member.stat().st_size
                with member.open("rb") as f:
                    tar.addfile(info, f)


def create(root: str | Path = ".", results: str = "results", weights: bool = False,
           out: str | Path | None = None) -> Path:
    """Bundle the results tree ``results`` (in ``root``) with its ledger records; returns
    the archive's path."""
    root = Path(root)
    paths.use(results)
    tree, config_path = root / paths.RESULTS, root / paths.run_config()
    if not tree.is_dir():
        raise BundleError(f"{tree}: no such results tree")
    if not config_path.is_file():
        raise BundleError(f"{config_path} is missing: the report of this tree was rendered by "
                          "an earlier version. Run the same ./repro run command again: it "
                          "renders the report (and its config) and nothing else")
    config = yaml.safe_load(config_path.read_text())
    records = tree_records(ledger.read(root / paths.ledger())[0], paths.RESULTS)
    if not records:
        raise BundleError(f"{root / paths.ledger()} holds no records of {results!r}: bundle a "
                          "tree whose run finished and wrote its claims")
    name = f"{paths.RESULTS.replace('/', '-')}-{records[-1]['run']}"
    members: dict[str, Path | bytes] = {
        path.relative_to(root).as_posix(): path for path in selected(root, weights)}
    members[paths.ledger()] = "".join(json.dumps(r, sort_keys=True) + "\n"
                                      for r in records).encode()
    sizes = {k: (len(v) if isinstance(v, bytes) else v.stat().st_size)
             for k, v in members.items()}
    software = ledger.trained_on(config, root, missing_ok=True)[1] or {}
    members[CRATE] = crate_metadata(sizes, config, records, software)
    members[MANIFEST] = "".join(
        f"{hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else sha256(v)}  {k}\n"
        for k, v in sorted(members.items())).encode()
    out = Path(out) if out else root / BUNDLES / f"{name}.tar.gz"
    ended = int(datetime.fromisoformat(records[-1]["ended"]).timestamp())
    write_archive(out, name, members, ended)
    return out


# ---------------------------------------------------------------------------- verification


def counted(n: int, noun: str) -> str:
    """``3 mismatches``, ``1 problem``."""
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith(("s", "sh", "ch")) else "s")


def unpack(bundle: Path, into: Path) -> Path:
    """The bundle's folder, unpacked (or copied, for a folder) into ``into``."""
    if bundle.is_dir():
        return Path(shutil.copytree(bundle, into / bundle.name))
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            tar.extractall(into, filter="data")  # no links out, no absolute paths
    except (OSError, tarfile.TarError, EOFError) as err:
        raise BundleError(f"{bundle}: cannot be read as a bundle ({err})") from err
    tops = [p for p in into.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise BundleError(f"{bundle}: holds {len(tops)} top-level entries, not one folder")
    return tops[0]


def check_manifest(top: Path) -> list[str]:
    """Every file against ``MANIFEST.sha256``: changed, missing, or not listed."""
    manifest = top / MANIFEST
    if not manifest.is_file():
        return [f"{MANIFEST}: missing, so no file can be checked"]
    problems, listed = [], {}
    for number, line in enumerate(manifest.read_text(errors="replace").splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (.+)", line)
        if not match:
            problems.append(f"{MANIFEST}:{number}: not a 'sha256  path' line")
            continue
        listed[match[2]] = match[1]
    present = {p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file()} - {MANIFEST}
    for name in sorted(listed.keys() - present):
        problems.append(f"{name}: missing (in the manifest, not in the bundle)")
    for name in sorted(present - listed.keys()):
        problems.append(f"{name}: not in the manifest")
    for name in sorted(listed.keys() & present):
        found = sha256(top / name)
        if found != listed[name]:
            problems.append(f"{name}: changed: SHA-256 expected {listed[name]}, found {found}")
    return problems


def _same(a: Any, b: Any) -> bool:
    """Two claims-table cells equal: numbers to :data:`REL_TOL`; NaN equal to NaN and to
    None (the ledger's JSON writes NaN as null)."""
    a, b = (float("nan") if v is None else v for v in (a, b))
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=1e-12)


COMPARED = ("verdict", "reproduced_mean", "std", "n")


def compare_claims(name: str, expected: list[dict[str, Any]], found: list[dict[str, Any]],
                   against: str = "in the recomputed table", columns: Iterable[str] = COMPARED
                   ) -> list[str]:
    """One line per claim (by claim id and protocol) whose ``columns`` differ between the
    table ``name`` (expected) and what is found ``against``, or that one of them lacks."""
    key = lambda row: (row["claim_id"], row["protocol"])  # noqa: E731
    have, got = {key(r): r for r in expected}, {key(r): r for r in found}
    problems = [f"{name}: {c} ({p}): missing, present {against}"
                for c, p in sorted(got.keys() - have.keys())]
    problems += [f"{name}: {c} ({p}): not {against}"
                 for c, p in sorted(have.keys() - got.keys())]
    for k in sorted(have.keys() & got.keys()):
        for column in columns:
            if not _same(have[k].get(column), got[k].get(column)):
                problems.append(f"{name}: {k[0]} ({k[1]}): {column} expected "
                                f"{have[k].get(column)}, found {got[k].get(column)} {against}")
    return problems


def recompute_claims(config: dict[str, Any], top: Path, scratch: Path) -> list[str]:
    """Every enabled study's claims stage again on the bundled files (this checkout's
    rules), compared with the bundled table."""
    problems = []
    with contextlib.chdir(top):
        for study in registry.enabled(config):
            if not study.has_claims:
                continue
            table = paths.study_file("claims", study.name)
            if not Path(table).is_file():
                continue  # the manifest check names it
            try:
                written = rules.call(config, study, study.stages["claims"], threads=1,
                                     into=scratch)
            except Exception as err:  # a missing or unreadable input: say which and go on
                problems.append(f"{table}: could not be recomputed: {type(err).__name__}: {err}")
                continue
            problems += compare_claims(table, read_csv(table).to_dict("records"),
                                       read_csv(written["claims"]).to_dict("records"))
    return problems


def check_ledger(config: dict[str, Any], top: Path, records: list[dict[str, Any]]) -> list[str]:
    """The bundled ledger records against the claims tables, and the config's hash: that of
    the run that made the bundle (the last record's). A study whose table an earlier run
    wrote (this run's config changed nothing it reads) keeps that run's records and hash;
    its verdicts are checked by recomputing them with this config (:func:`recompute_claims`)."""
    problems = []
    last = records[-1]["run"]
    hashes = {r.get("config") for r in records if r["run"] == last} - {ledger.config_hash(config)}
    problems += [f"{paths.ledger()}: config hash expected {ledger.config_hash(config)} (of "
                 f"{paths.run_config()}), found {h}" for h in sorted(map(str, hashes))]
    for study in registry.enabled(config):
        table = top / paths.study_file("claims", study.name)
        if not study.has_claims or not table.is_file():
            continue
        rows = [{"claim_id": r["claim"], "protocol": r["protocol"], "verdict": r["verdict"],
                 "reproduced_mean": r["mean"]} for r in records if r["study"] == study.name]
        if not rows:
            problems.append(f"{paths.ledger()}: no records of {study.name}'s claims table")
            continue
        problems += compare_claims(paths.study_file("claims", study.name),
                                   read_csv(table).to_dict("records"), rows,
                                   f"in the ledger ({paths.ledger()})",
                                   ("verdict", "reproduced_mean"))
    return problems


def rerender(config: dict[str, Any], top: Path, checkout: Path, commit: str
             ) -> tuple[list[str], list[str]]:
    """The report rendered again from the bundle (over the bundled pages, in the unpacked
    copy): problems, and notes. Pages are compared byte for byte when ``commit`` (the
    run's) is this checkout's; the run's commit is the one the pages show."""
    pages = [paths.report_index(), paths.paper("tex"),
             *(paths.report_page(s.name) for s in registry.enabled(config))]
    before = {p: (top / p).read_bytes() for p in pages if (top / p).is_file()}
    try:
        content = report.collect(config, top, checkout, pdf=(top / paths.paper("pdf")).is_file())
    except report.ReportError as err:
        # paths in the bundle, not in the temporary folder it was unpacked into
        return [f"the report cannot be rendered from the bundle: "
                f"{str(err).replace(f'{top}{os.sep}', '')}"], []
    content["provenance"]["git_commit"] = commit
    report.render_html(content, top)
    report.render_latex(content, top / paths.paper("tex"))
    stale = content["code_check"]["stale"]
    notes = [f"{len(stale)} of {content['code_check']['checked']} artifacts were made by other "
             "code than this checkout's" if stale else
             f"all {content['code_check']['checked']} artifacts that record their code were "
             "made by this checkout's code"]
    here = git_commit(checkout)
    if here != commit or here.endswith("-dirty") or stale:
        return [], notes + [f"the report was rendered again; its pages are not compared: the "
                            f"bundle was made by {commit}, this checkout is {here}"]
    problems = [f"{p}: differs from the page its bundled artifacts render to"
                for p, text in before.items() if (top / p).read_bytes() != text]
    return problems, notes + [f"the report was rendered again: {len(before) - len(problems)} "
                              f"of {len(before)} pages equal to the bundled ones"]


def verify(bundle: str | Path, into: Path, checkout: str | Path = ".",
           say: Any = print) -> list[str]:
    """Every check of the module docstring on ``bundle``, unpacked into ``into``; the
    problems found (none: all agree). ``say`` gets the progress and the notes."""
    checkout = Path(checkout).resolve()
    top = unpack(Path(bundle), into)
    say(f"verify: {'copied' if Path(bundle).is_dir() else 'unpacked'} into {top}")
    problems = check_manifest(top)
    say(f"verify: manifest: {counted(len(problems), 'problem')}")
    records, bad = ledger.read(top / paths.ledger())
    problems += bad
    if not records:  # they name the results tree, and the run's commit
        return problems + [f"{paths.ledger()}: no records, so nothing more can be checked"]
    paths.use(records[-1]["results"])
    if not (top / paths.run_config()).is_file():
        return problems + [f"{paths.run_config()}: missing, so nothing more can be checked"]
    config = yaml.safe_load((top / paths.run_config()).read_text())
    problems += check_ledger(config, top, records)
    for study, record in {r["study"]: r for r in records if r["run"] != records[-1]["run"]}.items():
        say(f"verify: {study}'s claims table was written by an earlier run, {record['run']} "
            f"(commit {run_commit(record)[:12]}), whose inputs this run left unchanged; its "
            "verdicts are recomputed with this run's config below")
    try:
        config = cfg.validate(config)
    except ConfigError as err:  # names the key
        return problems + [f"{paths.run_config()}: not valid for this checkout: {err}"]
    if config["results"] != paths.RESULTS:
        problems.append(f"{paths.run_config()}: results expected {paths.RESULTS} (the "
                        f"ledger's), found {config['results']}")
    with tempfile.TemporaryDirectory() as scratch:
        found = recompute_claims(config, top, Path(scratch))
    say(f"verify: claims recomputed by this checkout's rules: {counted(len(found), 'mismatch')}")
    problems += found
    commit = run_commit(records[-1])
    found, notes = rerender(config, top, checkout, commit)
    problems += found
    for note in notes:
        say(f"verify: {note}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./repro", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("bundle", help="one archive of a results tree")
    make.add_argument("--results", default="results",
                      help="the results tree (the config key `results`; default: results)")
    make.add_argument("--weights", action="store_true", help="keep the weights (*.pt)")
    make.add_argument("-o", "--output", help="the archive (default: bundles/<tree>-<run>.tar.gz)")
    check = verbs.add_parser("verify", help="check a bundle without retraining")
    check.add_argument("bundle", help="a bundle (.tar.gz) or an unpacked bundle's folder")
    check.add_argument("--into", help="unpack here and keep it, with the report rendered "
                       "again (an empty or new folder; default: a temporary one)")
    args = parser.parse_args(argv)
    try:
        if args.verb == "bundle":
            out = create(".", args.results.rstrip("/"), args.weights, args.output)
            print(f"bundle: {out} ({out.stat().st_size / 1e6:.1f} MB); check it with "
                  f"./repro verify {out}")
            return 0
        with contextlib.ExitStack() as stack:
            if args.into:
                into = Path(args.into)
                if into.exists() and any(into.iterdir()):
                    raise BundleError(f"--into {into}: not empty")
                into.mkdir(parents=True, exist_ok=True)
            else:
                into = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            problems = verify(args.bundle, into)
            for problem in problems:
                print(f"  {problem}")
            print(f"verify: {args.bundle}: " + (counted(len(problems), "mismatch") if problems
                                                 else "every check agrees"))
            return 1 if problems else 0
    except BundleError as err:
        print(f"{args.verb}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
