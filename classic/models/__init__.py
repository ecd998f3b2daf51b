"""The model zoo: one module per paper family, its named variants, built by name from a config.

Each family module registers its class (`@register("resnet")`) and its named variants
(`variant("resnet50", "resnet", depth=50)`: the fields that differ from the class's defaults).
`config("resnet50")` is that variant as a `config.model` block holding *every* field of the module,
so a training recipe (configs/) starts from it and any field is an override away without restating
it; `build(config.model)` looks up `config.model.name` and passes every other field to the
module's constructor, so each design choice of a paper (LRN, shortcuts, factorization, aux heads,
BN ...) is a dataclass field of the module:

    --config.model.residual=False      # ResNet-56 -> plain-56

Modules take NHWC float images and `train: bool`, and return logits. Auxiliary classifiers (GoogLeNet,
Inception v3) are *sown* into the `aux` collection during training; the train step adds their loss.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable, Iterable

import flax.linen as nn
import ml_collections

_REGISTRY: dict[str, type[nn.Module]] = {}
_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {}   # variant -> (registered model, its fields)
_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {}      # variant -> the paper's input (H, W, C)
_REFERENCES: dict[str, "Reference"] = {}                 # variant -> what its paper states
# Fields of a module that are not architecture: the trainer sets them (bf16 compute).
NOT_CONFIG_FIELDS = ("parent", "name", "dtype")
# Families live in their own files; importing the package registers them all.
_FAMILIES = ("lenet", "resnet", "alexnet", "zfnet", "nin", "vgg", "googlenet", "inception_v2",
             "inception_v3", "inception_v4", "highway")


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
  """Class decorator: makes `name` buildable from `config.model.name`."""

  def wrap(cls: type[nn.Module]) -> type[nn.Module]:
    if name in _REGISTRY and _REGISTRY[name] is not cls:
      raise ValueError(f"model name {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls

  return wrap


@dataclasses.dataclass(frozen=True)
class Reference:
  """What a variant's paper (or, where the paper gives none, a reference implementation) states about
  it, kept beside the variant as timm keeps its default_cfgs. Counts are written as stated ("0.27M",
  "60,000", "1.8G" multiply-adds) and agree with ours to one unit of their last digit (papers round or
  truncate), unless `differs` says why not; tests/models/test_references.py checks both ways.
  `classic.summary --all` prints them beside our counts (docs/models.md)."""
  source: str                        # "He et al. 2015, Table 6"
  params: str = ""                   # trainable parameters as stated
  macs: str = ""                     # multiply-adds per image as stated
  top1_err: float | None = None      # reported error, %, measured as `protocol` says
  top5_err: float | None = None
  protocol: str = ""                 # "10-crop, ILSVRC-2012 val"
  differs: str = ""                  # why our count and the stated one differ ('' where they agree)

  def describe(self) -> str:
    counts = ", ".join(x for x in (self.params and f"{self.params} params", self.macs and f"{self.macs} MACs") if x)
    errors = [f"top-{k} error {e:g} %" for k, e in ((1, self.top1_err), (5, self.top5_err)) if e is not None]
    errors = f"{', '.join(errors)} ({self.protocol})" if errors else ""
    return "; ".join(x for x in (counts, errors, self.source, self.differs) if x)


_UNITS = {"K": 1e3, "M": 1e6, "G": 1e9}


def stated(figure: str) -> tuple[float, float]:
  """(value, one unit of its last digit) of a count as a paper writes it: '0.27M' -> (270000, 10000)."""
  text = figure.replace(",", "").strip()
  scale = _UNITS.get(text[-1:], 1.0)
  number = text[:-1] if text[-1:] in _UNITS else text
  decimals = len(number.split(".")[1]) if "." in number else 0
  return float(number) * scale, 10.0 ** -decimals * scale


def agrees(ours: int, figure: str) -> bool:
  """Whether our count is the stated figure, to one unit of its last digit."""
  value, unit = stated(figure)
  return abs(ours - value) < unit


def variant(variant_name: str, model: str, input_shape: tuple[int, int, int] = (224, 224, 3),
            reference: Reference | None = None, **fields: Any) -> None:
  """Registers a named variant: `model`'s class with `fields` in place of its defaults, designed for
  images of `input_shape` (height, width, channels), with what its paper states (`reference`)."""
  if variant_name in _VARIANTS and _VARIANTS[variant_name] != (model, fields):
    raise ValueError(f"model variant {variant_name!r} registered twice")
  _VARIANTS[variant_name] = (model, fields)
  _INPUT_SHAPES[variant_name] = tuple(input_shape)
  if reference is not None:
    _REFERENCES[variant_name] = reference


def reference(variant_name: str) -> Reference | None:
  """What the variant's paper (or reference implementation) states, where we record it."""
  _registered_variant(variant_name)
  return _REFERENCES.get(variant_name)


def _registered_variant(variant_name: str) -> tuple[str, dict[str, Any]]:
  _import_families()
  if variant_name not in _VARIANTS:
    raise _unknown("model variant", variant_name, _VARIANTS)
  return _VARIANTS[variant_name]


def input_shape(variant_name: str) -> tuple[int, int, int]:
  """The (height, width, channels) input the variant's paper (or source zoo) uses."""
  _registered_variant(variant_name)
  return _INPUT_SHAPES[variant_name]


def _import_families() -> None:
  for family in _FAMILIES:
    try:
      importlib.import_module(f"{__name__}.{family}")
    except ModuleNotFoundError as e:  # a family not written yet must not break the others
      if e.name != f"{__name__}.{family}":
        raise


def names() -> list[str]:
  """All registered model names."""
  _import_families()
  return sorted(_REGISTRY)


def variant_names() -> list[str]:
  """All named variants (resnet50, plain56, googlenet_torchvision, ...), in registration order."""
  _import_families()
  return list(_VARIANTS)


def _unknown(kind: str, name: str, known) -> ValueError:
  close = difflib.get_close_matches(name, known, n=3)
  hint = f" Did you mean {', '.join(close)}?" if close else ""
  return ValueError(f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}.")


def get_class(name: str) -> type[nn.Module]:
  _import_families()
  if name not in _REGISTRY:
    raise _unknown("model", name, _REGISTRY)
  return _REGISTRY[name]


def config_fields(cls: type[nn.Module]) -> dict[str, Any]:
  """The module's configurable fields and their defaults (MISSING where it has none)."""
  return {f.name: (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
          for f in dataclasses.fields(cls) if f.init and f.name not in NOT_CONFIG_FIELDS}


def config(variant_name: str, **overrides: Any) -> ml_collections.ConfigDict:
  """The `config.model` block of a named variant: `name` and every field of the module.

  `overrides` replace fields (an unknown one fails, naming the module's fields)."""
  model, fields = _registered_variant(variant_name)
  values = {**config_fields(get_class(model)), **fields}
  _check_fields(model, set(overrides) - set(values), set(values))
  values.update(overrides)
  missing = [k for k, v in values.items() if v is dataclasses.MISSING or v is None]
  if missing:  # a config field needs a value of a fixed type, so `--config.model.x=v` parses
    raise ValueError(f"model variant {variant_name!r} gives no value for {', '.join(missing)}")
  block = ml_collections.ConfigDict({"name": model})
  for key, value in values.items():
    block[key] = _as_tuple(value)
  return block


def _as_tuple(value: Any) -> Any:
  """Tuples come back from config.json as (nested) lists; module fields must be hashable tuples."""
  return tuple(_as_tuple(x) for x in value) if isinstance(value, (list, tuple)) else value


def _check_fields(model: str, unknown, known) -> None:
  if unknown:
    hints = []
    for u in sorted(unknown):
      close = difflib.get_close_matches(u, known, n=1)
      hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(f"Model {model!r} has no field {', '.join(hints)}. "
                     f"Its fields: {', '.join(sorted(known))}.")


def _init_fields(cls: type[nn.Module]) -> set[str]:
  """The constructor arguments of a model class (flax's own `parent` and `name` aside)."""
  return {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")}


def check_config(model_config: Any, explicit: Iterable[str] = ()) -> None:
  """Refuses, before anything is built or loaded, a `config.model` block with an unknown model or
  field, a value outside an enumerated field's choices (the class's CHOICES), or an override
  (`explicit`: the run config's dotted names set on the command line, 'model.shortcut') of a field the other values make inert
  (the class's `unused_fields`, e.g. a plain net's shortcut)."""
  fields = dict(model_config)
  name = fields.pop("name")
  cls = get_class(name)
  known = _init_fields(cls)
  _check_fields(name, set(fields) - known, known)
  for field, choices in getattr(cls, "CHOICES", {}).items():
    if fields.get(field) not in choices:
      raise ValueError(f"model.{field} of {name} must be one of {', '.join(map(repr, choices))}; "
                       f"got {fields.get(field)!r}.")
  unused = cls.unused_fields(fields) if hasattr(cls, "unused_fields") else {}
  inert = [f"model.{f} ({why})" for f, why in unused.items() if f"model.{f}" in set(explicit)]
  if inert:
    raise ValueError(f"{name} would ignore {'; '.join(inert)}: drop the override, or set the field "
                     "that makes it count.")


def build(model_config: Any, **overrides: Any) -> nn.Module:
  """Builds the module named by `model_config.name`; other fields are constructor arguments."""
  fields = {**dict(model_config), **overrides}
  name = fields.pop("name")
  cls = get_class(name)
  known = _init_fields(cls)
  _check_fields(name, set(fields) - known, known)
  return cls(**{key: _as_tuple(value) for key, value in fields.items()})
