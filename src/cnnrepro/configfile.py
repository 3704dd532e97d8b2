"""Reading one config file strictly: every error names the file (and line and column),
and a key given twice in one mapping is an error (YAML would silently keep the last).

Used by ``./repro run`` before Snakemake starts and by :func:`cnnrepro.config.load`; it
imports no torch.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml


class ConfigFileError(ValueError):
    """A config file is missing, not YAML, or not a mapping of config keys."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping (YAML would keep "
                    f"only the last)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A config file as a mapping; every error names the file (and line and column)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigFileError(f"{path}: no such config file")
    try:
        data = yaml.load(path.read_text(), Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f" ({err.context})" if err.context else ""
        raise ConfigFileError(f"{path}{where}: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a mapping of config keys "
                              f"(`key: value` lines), not a {type(data).__name__}")
    return data
