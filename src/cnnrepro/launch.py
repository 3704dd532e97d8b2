"""What ``./repro run`` does before Snakemake starts.

* The config files the user names are read first, so a YAML error names the file, line
  and column (Snakemake parses ``--configfile`` itself and names neither), a missing file
  or preset is one sentence, and a key given twice in one mapping is an error (YAML would
  silently keep the last).
* A preset and overlays go to Snakemake after **one** ``--configfile`` flag: Snakemake keeps
  only the last flag, so ``--configfile preset.yaml --configfile overlay.yaml`` silently
  drops the preset. ``./repro run --preset quick overlay.yaml`` and any number of
  ``--configfile`` flags all become one ``--configfile config/presets/quick.yaml
  overlay.yaml``, the preset first.
* On a machine with GPUs, a local run is given ``--resources gpu=N`` (N: the GPUs CUDA
  sees, :func:`visible_gpus`): Snakemake ignores a resource without a limit, and would
  start as many GPU jobs at once as there are cores. Each job then takes a device of its
  own (:func:`cnnrepro.locks.gpu_slot`). A ``--resources`` of your own is left as it is.
* A lock left by a Snakemake run that died (``kill -9``, a lost node) is spotted through
  the owner record the workflow writes beside Snakemake's locks (:mod:`cnnrepro.locks`),
  and the command that clears it is printed instead of Snakemake's generic "cannot be
  locked".

This module imports no torch: it runs before every ``./repro run``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .configfile import ConfigFileError, read_config_file
from .locks import COMMAND_ENV, stale_lock

PRESETS = Path("config") / "presets"  # ./repro runs in the project folder
SELECTIONS = Path(".snakemake") / "cnnrepro"  # the overlays --study writes


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def study_names() -> list[str]:
    return list(read_config_file("config.yaml")["studies"])


def selection(studies: list[str]) -> tuple[Path, dict[str, Any]]:
    """The overlay that ``--study`` adds: the named studies enabled, every other disabled
    (a study's whole chain and its report; the models it borrows still train)."""
    known = study_names()
    unknown = [s for s in studies if s not in known]
    if unknown:
        raise ConfigFileError(f"--study {', '.join(unknown)}: no such study; the studies are "
                              f"{', '.join(known)}")
    chosen = [s for s in known if s in studies]
    overlay = {"studies": {s: {"enabled": s in chosen} for s in known}}
    return SELECTIONS / f"study-{'+'.join(chosen)}.yaml", overlay


def write_selection(path: Path, overlay: dict[str, Any]) -> None:
    """Write ``overlay`` atomically (by hand: :mod:`cnnrepro.io` imports torch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("# written by ./repro run --study\n" + yaml.safe_dump(overlay))
    os.replace(tmp, path)


def visible_gpus() -> int:
    """How many GPUs CUDA would see, without importing torch: ``CUDA_VISIBLE_DEVICES``
    where it is set (its entries up to the first ``-1``), else the GPUs ``nvidia-smi
    --list-gpus`` lists; 0 where neither says."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        entries = [e.strip() for e in listed.split(",")]
        return len(entries[:entries.index("-1")] if "-1" in entries else [e for e in entries if e])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "--list-gpus"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def compose(argv: list[str]) -> tuple[list[str], list[Path], list[str]]:
    """``./repro run`` arguments as Snakemake arguments, the config files in order, and
    the studies ``--study`` names (empty: every enabled study).

    ``--preset NAME`` (``config/presets/NAME.yaml``) and the ``.yaml``/``.yml``/``.json``
    files right after it, plus every ``--configfile``/``--configfiles`` list, become one
    trailing ``--configfile`` list: the preset, then the others as given, then the
    overlay of ``--study NAME`` (repeated or comma-separated; :func:`selection`). Without
    a ``--cores``, ``--jobs``, ``--profile`` or ``--executor``, ``--cores all`` is added;
    a local run (no ``--profile``, no ``--executor``) without ``--resources`` on a machine
    with GPUs gets ``--resources gpu=N``.
    """
    rest: list[str] = []
    preset: Path | None = None
    files: list[Path] = []
    studies: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, _, inline = arg.partition("=")
        if flag == "--study":
            names = inline or (argv[i + 1] if i + 1 < len(argv) else "")
            if not names or names.startswith("-"):
                raise ConfigFileError("--study needs a study's name (--study caltech)")
            studies += [n for n in names.split(",") if n]
            i += 1 if inline else 2
        elif flag == "--preset":
            if preset is not None:
                raise ConfigFileError("--preset given twice: one preset, then overlays")
            name = inline or (argv[i + 1] if i + 1 < len(argv) else "")
            i += 1 if inline else 2
            preset = PRESETS / f"{name}.yaml"
            if not preset.is_file():
                raise ConfigFileError(f"--preset {name!r}: no such preset; the presets are "
                                      f"{', '.join(presets())} (config/presets/)")
            while i < len(argv) and argv[i].endswith((".yaml", ".yml", ".json")):
                files.append(Path(argv[i]))
                i += 1
        elif flag in ("--configfile", "--configfiles"):
            i += 1
            if inline:
                files.append(Path(inline))
            while not inline and i < len(argv) and not argv[i].startswith("-"):
                files.append(Path(argv[i]))
                i += 1
        else:
            rest.append(arg)
            i += 1
    flags = {a.partition("=")[0] for a in rest}
    if not flags & {"--cores", "--jobs", "--profile", "--executor"} and not any(
            a[:2] in ("-c", "-j", "-e") for a in rest):
        rest += ["--cores", "all"]
    local = not flags & {"--profile", "--executor"} and not any(a[:2] == "-e" for a in rest)
    if local and not flags & {"--resources", "--res"}:
        gpus = visible_gpus()
        rest += ["--resources", f"gpu={gpus}"] if gpus else []
    configfiles = ([preset] if preset else []) + files
    if studies:
        configfiles.append(selection(studies)[0])
    return (rest + (["--configfile", *map(str, configfiles)] if configfiles else []),
            configfiles, studies)


def main(argv: list[str]) -> None:
    """``./repro run``: check the config files and the lock, then become Snakemake."""
    try:
        args, configfiles, studies = compose(argv)
        if studies:
            write_selection(*selection(studies))
        for path in configfiles:
            read_config_file(path)
    except ConfigFileError as err:
        sys.exit(f"repro: {err}")
    stale = stale_lock()
    if stale and "--unlock" not in args:
        if not {"-n", "--dry-run", "--dryrun"} & set(args):
            sys.exit(stale)
        print(stale, file=sys.stderr)
    os.environ[COMMAND_ENV] = shlex.join(["./repro", "run", *argv])  # for a run it refuses
    if configfiles:
        print(f"repro: config.yaml + {' + '.join(map(str, configfiles))}", file=sys.stderr)
    os.execv(sys.executable, [sys.executable, "-m", "snakemake", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
