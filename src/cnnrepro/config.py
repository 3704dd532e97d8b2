"""Configuration: schema validation with defaults, semantic checks, and config slices.

The JSON schema describes every key and gives its default: the common keys in
``workflow/schemas/config.schema.yaml``, each study's own keys in its folder
(``src/cnnrepro/studies/<study>/schema.yaml``), merged by :func:`load_schema`.
:func:`validate` fills the defaults and turns the first violation into one sentence that
names the key path, so a typo fails before Snakemake builds any job. Beyond the schema,
:func:`validate` checks what one key says about another: normalisation against the
dataset's channels, model options against each architecture (types, and one build on
the meta device for the dataset's input shape), subsets against split sizes, snapshot
epochs against epochs, and each study's own rules (its ``check_config`` hook).
:func:`check_data` adds what only the data source can tell (classes in the mirror).
"""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

from .configfile import ConfigFileError, read_config_file
from .datasets import check_options, check_source, input_shape
from .models import ModelError, check_spec
from .spec import (
    ConfigError,
    block_departures,
    check_images,
    deep_update,
    enabled_studies,
    training_spec,
)
from .studies import REGISTRY, enabled

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_schema() -> dict[str, Any]:
    """The common schema with every registered study's block: the common study keys
    (``$defs/study``) and the study's own (its ``schema.yaml``)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    studies = schema["properties"]["studies"].setdefault("properties", {})
    for name, study in REGISTRY.items():
        parts: list[dict[str, Any]] = [{"$ref": "#/$defs/study"}]
        if study.schema is not None:
            own = yaml.safe_load(study.schema.read_text())
            schema["$defs"].update(own.pop("$defs", {}))
            parts.append(own)
        studies[name] = {"allOf": parts, "unevaluatedProperties": False}
    return schema


def _with_defaults(validator_class: type) -> type:
    """A validator that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key(path: Iterator[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _base_order() -> dict[str, Any]:
    return read_config_file(ROOT / "config.yaml")


def follow_order(config: dict[str, Any], base: dict[str, Any]) -> None:
    """Order ``config``'s keys (in place, at every depth) as ``base`` has them; keys that
    ``base`` lacks follow in their own order. Snakemake merges the Snakefile's config
    under the command line's, so a preset that names one model (quick: caltech's vgg19)
    would otherwise put it first: the order of models in tables and figures, and which
    model is "the first", would depend on how the config files were given."""
    for key, value in base.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            follow_order(config[key], value)
    order = [k for k in base if k in config] + [k for k in config if k not in base]
    config.update([(k, config.pop(k)) for k in order])


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled, keys in config.yaml's order) and
    return it."""
    _check_finite(config)
    follow_order(config, _base_order())
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # An error inside a study's allOf also makes its keys "unevaluated": report the inner one.
    errors = sorted(validator.iter_errors(config), key=lambda e: (
        e.validator == "unevaluatedProperties", [str(p) for p in e.absolute_path]))
    if errors:
        err = errors[0]
        key = _key(err.absolute_path)
        if err.validator == "pattern" and "description" in err.schema:
            raise ConfigError(f"config key {key}: {err.instance!r} is not allowed: "
                              f"{err.schema['description'].strip()}")
        if err.validator in ("additionalProperties", "unevaluatedProperties"):
            # a study block's keys are the common ones ($defs/study) and the study's own
            parts = [schema["$defs"]["study"] if part.get("$ref") == "#/$defs/study" else part
                     for part in err.schema.get("allOf", [err.schema])]
            allowed = sorted({k for part in parts for k in part.get("properties", {})})
            unexpected = sorted(set(err.instance) - set(allowed))
            raise ConfigError(f"config key {key}: unknown key(s) {unexpected}; "
                              f"allowed here: {allowed}")
        raise ConfigError(f"config key {key}: {err.message}")
    _check_semantics(config)
    _check_notes(config)
    return config


def _check_finite(block: Any, path: tuple = ()) -> None:
    """NaN and infinity (YAML ``.nan``, ``.inf``) are refused everywhere: every number of
    the config is a size, a rate, a threshold or a throughput, and JSON schema's bounds let
    NaN through (every comparison with it is false), which would flip verdicts."""
    if isinstance(block, dict):
        for key, value in block.items():
            _check_finite(value, (*path, key))
    elif isinstance(block, list):
        for i, value in enumerate(block):
            _check_finite(value, (*path, i))
    elif isinstance(block, float) and not math.isfinite(block):
        raise ConfigError(f"config key {_key(path)}: {block} is not a finite number (NaN and "
                          f"infinity are refused)")


def _check_semantics(config: dict[str, Any]) -> None:
    datasets = {spec["dataset"] for spec in config["studies"].values()}
    for name in sorted(datasets | set(config["data"]["datasets"])):
        for problem in check_options(name, config):
            raise ConfigError(f"config key {problem}")
    for study, spec in config["studies"].items():
        where = f"studies.{study}"
        if not spec["models"]:
            raise ConfigError(f"config key {where}.models: a study needs at least one model")
        shape = input_shape(config, spec["dataset"])
        for stat in ("mean", "std"):
            if len(spec["normalize"][stat]) != shape[0]:
                raise ConfigError(
                    f"config key {where}.normalize.{stat}: {len(spec['normalize'][stat])} "
                    f"value(s) for {spec['dataset']}'s {shape[0]} channel(s); give one per channel")
        folders = {}
        for model, mspec in spec["models"].items():
            if model.lower() in folders:  # one folder on case-insensitive file systems
                raise ConfigError(f"config key {where}.models.{model}: differs from "
                                  f"{folders[model.lower()]!r} only in case")
            folders[model.lower()] = model
            try:
                check_spec(mspec["arch"], mspec.get("options", {}), f"{where}.models.{model}",
                           shape)
            except ModelError as err:
                raise ConfigError(f"config key {err}") from None
            _check_run(config, training_spec(config, study, model), where)
        check = REGISTRY[study].check_config
        if check is not None:
            check(spec, config)


def _check_run(config: dict[str, Any], spec: dict[str, Any], where: str,
               mirror: Path | None = None) -> None:
    """A training spec's snapshots against its epochs, its subsets against split sizes."""
    training, model = spec["training"], spec["model"]
    late = sorted(e for e in training.get("snapshot_epochs", []) if e > training["epochs"])
    if late:
        raise ConfigError(f"config key {where}.training.snapshot_epochs: {late} lie beyond the "
                          f"{training['epochs']} training epochs of model {model!r}")
    for split, n in spec["subset"].items():
        check_images(config, f"{where}.subset.{split}", n, spec["dataset"], split, mirror)


def check_data(config: dict[str, Any], mirror: Path | None) -> None:
    """The checks that need the data source (a validated config): Caltech classes in the
    mirror, and subsets against the split sizes counted there."""
    for problem in check_source(config, needed_datasets(config), mirror):
        raise ConfigError(f"config key {problem}")
    for study in enabled_studies(config):
        for model in config["studies"][study]["models"]:
            _check_run(config, training_spec(config, study, model), f"studies.{study}", mirror)


def load(path: str | Path, overlays: list[str | Path] = ()) -> dict[str, Any]:
    """Read ``path`` and deep-merge ``overlays`` (presets) on top, then validate. A file
    that is missing, not YAML or not a mapping fails naming it (and the line)."""
    try:
        config = read_config_file(path)
        for overlay in overlays:
            deep_update(config, read_config_file(overlay))
    except ConfigFileError as err:
        raise ConfigError(str(err)) from None
    return validate(config)


# --------------------------------------------------------------------------- slices


def needed_datasets(config: dict[str, Any]) -> list[str]:
    """The datasets to prepare and verify: each enabled study's, those its registry entry
    adds (``extra_datasets``), then the extras listed under ``data.datasets``."""
    found = []
    for study in enabled(config):
        found.append(config["studies"][study.name]["dataset"])
        found += study.extra_datasets(config) if study.extra_datasets else []
    return list(dict.fromkeys(found + list(config["data"]["datasets"])))


def sources_line(config: dict[str, Any], files: list[str | Path]) -> str:
    """The start-up line naming the config files in force (in merge order) and the preset
    they make, with a warning when overlays came without a preset (Snakemake keeps only
    the last ``--configfile`` flag: a preset given by an earlier flag is silently gone)."""
    shown = [os.path.relpath(f) if not os.path.relpath(f).startswith("..") else str(f)
             for f in files]  # Snakemake makes the given paths absolute
    shown = list(dict.fromkeys(shown))  # config.yaml given again on the command line
    line = f"cnnrepro: settings from {' + '.join(shown)}: preset '{config['preset']}'"
    if config["preset"] == "full" and any(Path(f).resolve() != ROOT / "config.yaml"
                                          for f in files):
        line += ("\n  No preset among these files: the full, GPU-scale settings. Snakemake keeps "
                 "only the last --configfile flag; give a preset and its overlays after one "
                 "flag (--configfile config/presets/cpu.yaml my.yaml) or run ./repro run "
                 "--preset cpu my.yaml")
    return line


@functools.cache
def _full_settings() -> dict[str, Any]:
    """``config.yaml`` as shipped, validated: what departures are measured against."""
    return load(ROOT / "config.yaml")


def departures(config: dict[str, Any], study: str,
               reference: dict[str, Any] | None = None) -> dict[str, str]:
    """The study's settings that differ from the full settings (``config.yaml`` as
    shipped, or ``reference``), keys relative to the study block; then those of every
    study whose trained models it borrows (its registry entry's ``borrows``), as
    ``studies.<study>.<key>``: a borrowed model trained for fewer epochs moves an attack's
    success rate as much as the study's own settings do."""
    reference = reference if reference is not None else _full_settings()
    found = _of_study(config, reference, study)
    for other in _borrowed(config, study):
        found.update({f"studies.{other}.{key}": text
                      for key, text in _of_study(config, reference, other).items()})
    return found


def _of_study(config: dict[str, Any], reference: dict[str, Any], study: str) -> dict[str, str]:
    """A study block's departures from the reference's, keys relative to the block."""
    return block_departures(config["studies"][study], reference["studies"].get(study, {}))


def _borrowed(config: dict[str, Any], study: str) -> list[str]:
    """The studies whose trained models ``study`` borrows (its registry entry's borrows)."""
    borrows = REGISTRY[study].borrows if study in REGISTRY else None
    return borrows(config) if borrows else []


def _under(key: str, block: str) -> bool:
    """``key`` is ``block`` or lies inside it (``studies.vdk.training.lr`` in
    ``studies.vdk``)."""
    return key == block or key.startswith(block + ".")


# Settings outside the study blocks that move numbers: a departure of one of them is one of
# the run's departures, like a study's.
RUN_SETTINGS = ("seeds", "deterministic", "evaluation", "runtime.precision")
# Why a departure moves numbers where no preset says (a preset's deviation_notes win).
BUILT_IN_NOTES = {"runtime.precision": "CUDA computes float32 convolutions and matmuls in "
                  "TF32 (10-bit mantissa) instead of full float32 as the originals"}


def _pick(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The nested block of ``config`` holding just the dotted ``keys``."""
    block: dict[str, Any] = {}
    for key in keys:
        *path, last = key.split(".")
        source, target = config, block
        for part in path:
            source, target = source.get(part, {}), target.setdefault(part, {})
        if last in source:
            target[last] = source[last]
    return block


def _note_for(key: str, notes: dict[str, str]) -> str:
    """The note of the most specific note key equal to ``key`` or a block above it."""
    found = [k for k in notes if _under(key, k)]
    return notes[max(found, key=len)] if found else ""


def run_departures(config: dict[str, Any], reference: dict[str, Any] | None = None,
                   every_study: bool = False) -> list[dict[str, str]]:
    """Every way this run departs from the full settings, computed (never written by
    hand, so the report's list and the claims' `not comparable` reasons cannot disagree):
    the run-level settings (:data:`RUN_SETTINGS`), then each enabled study's block and
    those of the studies it borrows models from, as ``{key, change, note}`` with keys from
    the top (``studies.vdk.training.epochs``); ``note`` is the preset's
    ``deviation_notes`` entry for that key or a block above it (why, not what).
    ``every_study``: the disabled studies' blocks too (what a preset's notes may name)."""
    reference = reference if reference is not None else _full_settings()
    found = block_departures(_pick(config, RUN_SETTINGS), _pick(reference, RUN_SETTINGS))
    studies = [s.name for s in enabled(config)]
    studies += [other for study in studies for other in _borrowed(config, study)]
    for study in dict.fromkeys(list(config["studies"]) if every_study else studies):
        found.update({f"studies.{study}.{key}": text
                      for key, text in _of_study(config, reference, study).items()})
    notes = {**BUILT_IN_NOTES, **config.get("deviation_notes", {})}
    return [{"key": key, "change": text, "note": _note_for(key, notes)}
            for key, text in found.items()]


def _check_notes(config: dict[str, Any]) -> None:
    """A preset's note names a key this configuration changes (or a block above one), in
    any study, enabled or not (``--study`` disables the others under the same preset): a
    note about a setting nothing changes would explain a departure that is not there."""
    notes = config.get("deviation_notes", {})
    if not notes:  # config.yaml itself has none: no full settings to load while loading them
        return
    keys = [d["key"] for d in run_departures(config, every_study=True)]
    for note in notes:
        if not any(_under(k, note) for k in keys):
            raise ConfigError(f"config key deviation_notes.{note}: this configuration does not "
                              f"depart from the full settings there (its departures: "
                              f"{', '.join(keys) or 'none'})")
