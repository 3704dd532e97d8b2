"""Configuration: schema validation with defaults, semantic checks, and config slices.

The JSON schema describes every key and gives its default: the common keys in
``workflow/schemas/config.schema.yaml``, each study's own keys in its folder
(``src/cnnrepro/studies/<study>/schema.yaml``), merged by :func:`load_schema`.
:func:`validate` fills the defaults and turns the first violation into one sentence that
names the key path, so a typo fails before Snakemake builds any job.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import yaml

from .models import ModelError, check_spec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


def load_schema() -> dict[str, Any]:
    """The common schema with every registered study's block: the common study keys
    (``$defs/study``) and the study's own (its ``schema.yaml``)."""
    from .studies import REGISTRY

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
    from .datasets import SPECS, check_options
    from .studies import REGISTRY
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
        check = REGISTRY[study].check_config
        if check is not None:
            check(spec, config)
    for name in config["data"]["datasets"]:
        for problem in check_options(name, config):
            raise ConfigError(f"config key {problem}")


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


# Keys of a study block that say nothing about how a number was produced (which epochs'
# weights are kept is not how they were trained).
NOT_SETTINGS = {"title", "document", "description", "enabled", "claims", "snapshot_epochs"}


def _flatten(block: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(block, dict) or not block:
        return {prefix: block}
    flat: dict[str, Any] = {}
    for key, value in block.items():
        if key not in NOT_SETTINGS:
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def departures(config: dict[str, Any], study: str,
               reference: dict[str, Any] | None = None) -> dict[str, str]:
    """The study's settings that differ from the full settings (``config.yaml`` as
    shipped, or ``reference``): ``{"training.epochs": "10 instead of 374", …}``, keys
    relative to the study block. Seeds are not study settings: more or fewer seeds never
    make a number incomparable."""
    reference = reference if reference is not None else load(ROOT / "config.yaml")
    ours = _flatten(config["studies"][study])
    full = _flatten(reference["studies"].get(study, {}))

    def text(value: Any) -> str:
        if isinstance(value, list) and len(value) > 6:  # keeps the reason one sentence
            return f"[{', '.join(map(str, value[:3]))}, …, {value[-1]}] ({len(value)} values)"
        return "all" if value is None else json.dumps(value) if isinstance(
            value, (list, dict)) else str(value)

    return {key: f"{text(ours.get(key))} instead of {text(full.get(key))}"
            for key in sorted(set(ours) | set(full)) if ours.get(key) != full.get(key)}


def evaluation_spec(config: dict[str, Any], study: str, model: str) -> dict[str, Any]:
    spec = training_spec(config, study, model)
    spec["evaluation"] = copy.deepcopy(config["evaluation"])
    return spec
