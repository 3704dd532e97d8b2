"""Configuration: schema validation with defaults, semantic checks, and config slices.

The JSON schema (``workflow/schemas/config.schema.yaml``) describes every key and gives
its default; :func:`validate` fills the defaults and turns the first violation into one
sentence that names the key path, so a typo fails before Snakemake builds any job.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import numpy as np
import yaml

from .models import ModelError, check_spec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


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


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place (defaults filled) and return it."""
    schema = load_schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # An error inside a study's allOf also makes its keys "unevaluated": report the inner one.
    errors = sorted(validator.iter_errors(config), key=lambda e: (
        e.validator == "unevaluatedProperties", [str(p) for p in e.absolute_path]))
    if errors:
        err = errors[0]
        key = _key(err.absolute_path)
        if err.validator == "unevaluatedProperties":
            raise ConfigError(f"config key {key}: unknown key(s) in {err.message.split('(')[-1]}"
                              .rstrip(")"))
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            unexpected = sorted(set(err.instance) - set(allowed))
            raise ConfigError(f"config key {key}: unknown key(s) {unexpected}; "
                              f"allowed here: {allowed}")
        raise ConfigError(f"config key {key}: {err.message}")
    _check_semantics(config)
    return config


def _check_semantics(config: dict[str, Any]) -> None:
    from .datasets import SPECS
    for study, spec in config["studies"].items():
        where = f"studies.{study}"
        if spec["dataset"] not in config["data"]["datasets"]:
            raise ConfigError(f"config key {where}.dataset: {spec['dataset']!r} is not in "
                              f"data.datasets {config['data']['datasets']}")
        if spec["dataset"] not in SPECS:
            raise ConfigError(f"config key {where}.dataset: unknown dataset {spec['dataset']!r}")
        if not spec["models"]:
            raise ConfigError(f"config key {where}.models: a study needs at least one model")
        for model, mspec in spec["models"].items():
            try:
                check_spec(mspec["arch"], mspec.get("options", {}), f"{where}.models.{model}")
            except ModelError as err:
                raise ConfigError(f"config key {err}") from None
    vdk = config["studies"].get("vdk")
    if vdk and vdk["claims"]["robust_epsilon"] not in vdk["fgsm"]["epsilons"]:
        raise ConfigError("config key studies.vdk.claims.robust_epsilon: "
                          f"{vdk['claims']['robust_epsilon']} is not in studies.vdk.fgsm.epsilons")
    ratios = config["data"]["caltech"]["split"]
    if abs(sum(ratios.values()) - 1.0) > 1e-6:
        raise ConfigError(f"config key data.caltech.split: ratios must sum to 1, got {ratios}")


def load(path: str | Path, overlays: list[str | Path] = ()) -> dict[str, Any]:
    """Read ``path`` and deep-merge ``overlays`` (presets) on top, then validate."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    for overlay in overlays:
        deep_update(config, yaml.safe_load(Path(overlay).read_text()) or {})
    return validate(config)


def deep_update(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges ``--configfile`` overlays: dicts recursively."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --------------------------------------------------------------------------- slices


def enabled_studies(config: dict[str, Any]) -> list[str]:
    return [name for name, spec in config["studies"].items() if spec["enabled"]]


def needed_datasets(config: dict[str, Any]) -> list[str]:
    return list(config["data"]["datasets"])


def training_spec(config: dict[str, Any], study: str, model: str) -> dict[str, Any]:
    """Everything that determines one training job: the config slice it records."""
    sspec = config["studies"][study]
    mspec = sspec["models"][model]
    training = deep_update(copy.deepcopy(sspec["training"]), mspec.get("training", {}))
    return {
        "study": study,
        "model": model,
        "dataset": sspec["dataset"],
        "arch": mspec["arch"],
        "options": copy.deepcopy(mspec.get("options", {})),
        "normalize": copy.deepcopy(sspec["normalize"]),
        "subset": copy.deepcopy(sspec["subset"]),
        "holdout_fraction": sspec["holdout_fraction"],
        "training": training,
        "device": config["device"],
        "deterministic": config["deterministic"],
    }


def logspace(spec: dict[str, Any]) -> list[float]:
    return [float(v) for v in np.logspace(spec["start"], spec["stop"], spec["num"])]


def grid_points(config: dict[str, Any], study: str = "lenet") -> list[tuple[int, int]]:
    """(lr index, weight-decay index) of every grid point, row-major."""
    grid = config["studies"][study]["grid"]
    return [(i, j) for i in range(grid["lr"]["num"]) for j in range(grid["weight_decay"]["num"])]


def grid_spec(config: dict[str, Any], model: str, lr_index: int, wd_index: int,
              study: str = "lenet") -> dict[str, Any]:
    """One grid point's training spec: fresh weights, the grid's epochs, hold-out and subset."""
    grid = config["studies"][study]["grid"]
    spec = training_spec(config, study, model)
    spec["training"].update(lr=logspace(grid["lr"])[lr_index],
                            weight_decay=logspace(grid["weight_decay"])[wd_index],
                            epochs=grid["epochs"], snapshot_epochs=[])
    spec["holdout_fraction"] = grid["holdout_fraction"]
    spec["subset"] = {**spec["subset"], "train": grid["train_subset"] or spec["subset"].get("train")}
    return spec


def evaluation_spec(config: dict[str, Any], study: str, model: str) -> dict[str, Any]:
    spec = training_spec(config, study, model)
    spec["evaluation"] = copy.deepcopy(config["evaluation"])
    return spec
