"""The model zoo: one module per paper family, built by name from a config.

`build(config.model)` looks up `config.model.name` in the registry and passes every other field of
`config.model` to the module's constructor, so each design choice of a paper (LRN, shortcuts,
factorization, aux heads, BN ...) is a dataclass field of the module and an override away:

    --config.model.residual=False      # ResNet-56 -> plain-56

Modules take NHWC float images and `train: bool`, and return logits. Auxiliary classifiers (GoogLeNet,
Inception v3) are *sown* into the `aux` collection during training; the train step adds their loss.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable

import flax.linen as nn

_REGISTRY: dict[str, type[nn.Module]] = {}
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


def get_class(name: str) -> type[nn.Module]:
  _import_families()
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, _REGISTRY, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"Unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}.")
  return _REGISTRY[name]


def build(model_config: Any, **overrides: Any) -> nn.Module:
  """Builds the module named by `model_config.name`; other fields are constructor arguments."""
  fields = {**dict(model_config), **overrides}
  name = fields.pop("name")
  cls = get_class(name)
  known = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")}
  unknown = sorted(set(fields) - known)
  if unknown:
    hints = []
    for u in unknown:
      close = difflib.get_close_matches(u, known, n=1)
      hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(f"Model {name!r} has no field {', '.join(hints)}. "
                     f"Its fields: {', '.join(sorted(known))}.")
  # Tuples come back from config.json as (nested) lists; module fields must be hashable tuples.
  as_tuple = lambda v: tuple(as_tuple(x) for x in v) if isinstance(v, (list, tuple)) else v
  return cls(**{key: as_tuple(value) for key, value in fields.items()})
