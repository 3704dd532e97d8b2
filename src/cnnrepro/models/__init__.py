"""The models the config names: :func:`build_model` from an ``arch`` and its ``options``,
checked first (:func:`check_spec`).

The builders live in :mod:`.architectures`. A builder's keyword arguments are the config's
``options`` for that model, so an unknown option is an error, not a silent default; each
option's value is checked against the builder's type annotation (integers are sizes: at
least 1), and :func:`check_spec` with an input shape builds the model on the meta device,
so options that cannot make a network for the dataset fail at start-up, naming the config
key.
"""

from __future__ import annotations

import inspect
import types
import typing
import warnings
from typing import Any, Literal

import torch
from torch import nn

from .architectures import (
    ARCHITECTURES,
    FALLBACK_USED,
    ModelError,
    VDKCNNet,
    frozen_split,
    gap_cnn,
    standardized_head,
    vdk_cnnet,
    vgg19_transfer,
)

__all__ = ["ARCHITECTURES", "FALLBACK_USED", "ModelError", "allowed_options", "build_model",
           "check_spec", "frozen_split", "gap_cnn", "meta_model", "option_types",
           "standardized_head", "vgg19_transfer"]


def option_types(arch: str) -> dict[str, Any]:
    """The architecture's options (its builder's keyword-only arguments) and their types."""
    builder = ARCHITECTURES[arch]
    target = VDKCNNet.__init__ if builder is vdk_cnnet else builder
    hints = typing.get_type_hints(target)
    return {name: hints.get(name, Any) for name, p in inspect.signature(target).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def allowed_options(arch: str) -> set[str]:
    return set(option_types(arch))


def _accepts(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a builder's annotation; integers are sizes (at least 1)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (list, tuple):
        item = args[0] if args else Any
        return isinstance(value, (list, tuple)) and all(_accepts(v, item) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


_NAMES = {int: ("a positive integer", "positive integers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings"), float: ("a number", "numbers"),
          type(None): ("null", "nulls")}


def _describe(hint: Any, plural: bool = False) -> str:
    """A type annotation in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a, plural) for a in args))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return "a list" + (f" of {_describe(args[0], plural=True)}" if args else "")
    return _NAMES.get(hint, (str(hint), str(hint)))[plural]


def meta_model(arch: str, options: dict[str, Any] | None, num_classes: int, in_channels: int,
               image_size: int) -> nn.Module:
    """The model on the meta device: shapes only, no memory, and no pretrained weights
    fetched (an option named ``weights`` is dropped). For checks and FLOP counts."""
    options = dict(options or {})
    if "weights" in option_types(arch):
        options["weights"] = None
    with torch.device("meta"):
        return build_model(arch, options, num_classes, in_channels, image_size).eval()


def check_spec(arch: str, options: dict[str, Any], where: str = "model",
               shape: tuple[int, int, int] | None = None) -> None:
    """Fail with the config key named if the architecture or an option is unknown or of
    the wrong type; with ``shape`` (channels, image size, classes), also if the options
    cannot make a network for such inputs (built and run once on the meta device)."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"{where}.arch: unknown architecture {arch!r}; "
                         f"known: {sorted(ARCHITECTURES)}")
    types_ = option_types(arch)
    unknown = set(options) - set(types_)
    if unknown:
        raise ModelError(f"{where}.options: unknown option(s) {sorted(unknown)} for {arch!r}; "
                         f"allowed: {sorted(types_)}")
    for name, value in options.items():
        if not _accepts(value, types_[name]):
            raise ModelError(f"{where}.options.{name}: {value!r} is not "
                             f"{_describe(types_[name])} ({arch})")
    if shape is not None:
        channels, size, classes = shape
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. zero-sized layers: the error follows
                meta_model(arch, options, classes, channels, size)(
                    torch.zeros(1, channels, size, size, device="meta"))
        except Exception as err:
            raise ModelError(f"{where}.options: {arch} with options {options} cannot take "
                             f"{channels}x{size}x{size} inputs ({str(err).splitlines()[0]})"
                             ) from None


def build_model(arch: str, options: dict[str, Any] | None, num_classes: int, in_channels: int,
                image_size: int) -> nn.Module:
    options = dict(options or {})
    check_spec(arch, options)
    return ARCHITECTURES[arch](num_classes, in_channels, image_size, **options)
