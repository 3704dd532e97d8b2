"""Which code made an artifact: a fingerprint of the package modules a job runs.

Snakemake reruns a job when its rule's script changes, not when a module that script
imports does (its "code" trigger reads the rule alone), so editing ``src/`` used to rerun
nothing and a results tree could mix artifacts of different code. Each rule therefore
carries, as its ``code`` param, the fingerprint of the package modules its job imports;
Snakemake's params trigger reruns the job when that changes (``runtime.rerun_on_code_change``
turns it off), and the job writes it into its artifacts' provenance (:func:`job`).

The modules are the static import closure of the job's entry points, read with ``ast``
(no import, so a dry run stays cheap): every ``import``/``from … import`` of a package
module anywhere in a file, inside functions too (``from a import b`` counts ``a.b`` where
that is a module, else ``a``). Two things are left out on purpose. A module imported by
name at run time (``importlib``, :func:`cnnrepro.study.later`) is not followed: a rule
names such modules as entry points itself (a stage's own module). And the packages above
a module, which Python runs first, count only where imported themselves: their
``__init__`` files are registries (``cnnrepro.studies``), whose effect on a job reaches it
through the job's params and paths, and counting them would rerun every study's analyses
when one figure changes. For the same reason the study registry's import of every study
is not followed: a figure's rule names its drawing module as an entry point. A file counts
by its syntax tree, so a comment or a reformatting reruns nothing.
Hand-written because :mod:`modulefinder` executes nothing but also follows every external
package, which costs seconds per dry run.
"""

from __future__ import annotations

import ast
import hashlib
import json
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

REGISTRY = "cnnrepro.studies"
SOURCE = Path(__file__).resolve().parent      # src/cnnrepro
_current: dict[str, Any] | None = None        # the running job's code (:func:`job`)


def module_file(module: str) -> Path:
    """The file of a package module (``cnnrepro.a.b``)."""
    base = SOURCE.joinpath(*module.split(".")[1:])
    return base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py")


def imports_of(path: Path, module: str | None = None) -> set[str]:
    """The package modules a file imports (``module``: its own name, for relative imports)."""
    here = module.split(".") if module else []
    if module and path.name != "__init__.py":
        here = here[:-1]                        # a relative import starts at the package
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here[:len(here) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            submodules = {f"{base}.{alias.name}" for alias in node.names} & _known()
            found.update(submodules if len(submodules) == len(node.names) else {base})
            found.update(submodules)
    return found & _known()


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_bytes(), filename=str(path))


def _code(path: Path) -> bytes:
    """What of a file counts: its syntax tree, so that a comment or a reformatting changes
    no fingerprint (a docstring does: it is part of the tree)."""
    return ast.dump(_tree(path)).encode()


@lru_cache(maxsize=None)
def _known() -> frozenset[str]:
    """Every module of the package by name."""
    names = set()
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(names)


@lru_cache(maxsize=None)
def _closure(entries: tuple[str, ...]) -> tuple[str, ...]:
    todo: list[str] = []
    for entry in entries:
        if entry.endswith(".py"):               # a script: its imports are the entry points
            todo.extend(imports_of(Path(entry)))
        elif entry not in _known():
            raise ValueError(f"{entry}: no such module in {SOURCE}")
        else:
            todo.append(entry)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            found = imports_of(module_file(name), name)
            if name == REGISTRY:                # it imports every study to list them
                found = {m for m in found if not m.startswith(REGISTRY + ".")}
            todo.extend(found - seen)
    return tuple(sorted(seen))


def modules(entries: Iterable[str]) -> tuple[str, ...]:
    """The package modules that ``entries`` (module names, or paths of scripts) import,
    directly or through each other, with the entry modules themselves."""
    return _closure(tuple(sorted(set(entries))))


def of(entries: Iterable[str]) -> str:
    """16 hex digits of the SHA-256 of the scripts' and modules' names and syntax trees
    (each file read once per process: a dry run asks for every figure's)."""
    return _digest(tuple(sorted(set(entries))))


def package() -> str:
    """The fingerprint of every module of the package (a run's, in the ledger)."""
    return of(_known())


@lru_cache(maxsize=None)
def _digest(entries: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for script in (Path(e) for e in entries if e.endswith(".py")):
        digest.update(script.name.encode() + b"\0" + _code(script) + b"\0")
    for name in modules(entries):
        digest.update(name.encode() + b"\0" + _code(module_file(name)) + b"\0")
    return digest.hexdigest()[:16]


def entry(scripts: str | Path, script: str, modules: Iterable[str]) -> dict[str, Any]:
    """A job's code: its script's name (in the folder ``scripts``), its entry modules and
    their fingerprint; what a rule's ``code`` param and its artifacts' provenance hold."""
    modules = sorted(set(modules))
    return {"fingerprint": of([str(Path(scripts) / script), *modules]), "script": script,
            "modules": modules}


def again(code: dict[str, Any], scripts: str | Path) -> str:
    """The fingerprint that ``code`` (:func:`entry`) has with the code here and now."""
    return entry(scripts, code["script"], code["modules"])["fingerprint"]


def check(results: Path, scripts: str | Path) -> dict[str, Any]:
    """Artifacts made by other code than this: each JSON artifact under ``results`` whose
    provenance records its job's code, that fingerprint recomputed with the code here
    (``scripts``: the workflow's scripts). With ``runtime.rerun_on_code_change`` on,
    Snakemake reruns such jobs before the report; this shows what is left (the option off,
    an artifact copied in from another tree, a job run by hand). Paths are given from the
    folder holding ``results``."""
    checked, stale = 0, []
    for path in sorted(Path(results).rglob("*.json")):
        try:
            found = json.loads(path.read_text())
        except ValueError:  # not this check's to report: the artifact's reader names it
            continue
        code = found.get("provenance", {}).get("code") if isinstance(found, dict) else None
        if not isinstance(code, dict):
            continue
        checked += 1
        try:
            now = again(code, scripts)
        except (OSError, ValueError):  # its script or a module is gone
            now = "its code is gone"
        if now != code["fingerprint"]:
            stale.append({"artifact": path.relative_to(Path(results).parent).as_posix(),
                          "code": ", ".join([code["script"], *code["modules"]]),
                          "made": code["fingerprint"], "now": now})
    return {"checked": checked, "stale": stale}


@contextmanager
def job(code: dict[str, Any] | None) -> Iterator[None]:
    """Within a job: its rule's ``code`` param, which provenance stamps record."""
    global _current
    before, _current = _current, code
    try:
        yield
    finally:
        _current = before


def current() -> dict[str, Any] | None:
    return _current
