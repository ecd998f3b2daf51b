"""Shared plumbing of the converters: arrays from any framework, a checked name map, the config.

A converter builds the classic config and module, takes the shapes of its variables with
`jax.eval_shape` (no compute), and fills every leaf from named source tensors through a `Mapper`:
`conv`, `bn` and `dense` read a layer's tensors by the source framework's names and transform them
(PyTorch OIHW -> HWIO, (out, in) -> (in, out); Keras tensors are already in JAX's layout). At the end
`Mapper.finish` fails with one error naming every missing, misshapen and unused source tensor.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from classic import models
from classic.train import defaults


class ConversionError(ValueError):
  """The weights do not fit the architecture: missing, extra or misshapen tensors, wrong classes."""


def to_numpy(x: Any) -> np.ndarray:
  """A numpy array from a numpy array, a torch tensor, a JAX/Keras array or anything array-like."""
  if hasattr(x, "detach"):  # torch.Tensor, without importing torch
    x = x.detach().cpu()
    if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
      x = x.float()
    x = x.numpy()
  elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):
    x = x.numpy()
  a = np.asarray(x)
  return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a


def unknown_arch(arch: str, known: Iterable[str], source: str) -> ConversionError:
  return ConversionError(f"Unknown {source} architecture {arch!r}. Known: {', '.join(sorted(known))}.")


def get_config(model_variant: str, image_size: int, mean_std, **model_fields: Any):
  """The run config of converted weights: the run defaults, the model variant with `model_fields`
  (the source's deviations), the source's input size and (mean, std) normalisation, and ImageNet evaluation
  (centre crop of the image resized to image_size / 0.875: 256 for 224, 342 for 299).

  It holds no training recipe: fine-tuning takes one from configs/ (`--config.init_from=workdir`)."""
  config = defaults.defaults()
  config.variant = model_variant
  config.model = models.config(model_variant, **model_fields)
  config.dataset, config.eval_split, config.in_memory = "imagenet2012", "validation", False
  config.image_size, config.eval_resize = image_size, round(image_size / 0.875)
  config.mean, config.std = map(tuple, mean_std)
  return config


def abstract_variables(config, conv_order: list[str] | None = None) -> dict[str, Any]:
  """Shapes of the module's variables at config.image_size (eval-mode init; aux heads included).

  `conv_order`, if given, receives the paths of the module's convolutions in the order they are
  called (the variables' dicts come back with sorted keys, which is not the network's order).
  """
  import flax.linen as nn
  module = models.build(config.model)
  size = config.image_size

  def record(next_fun, args, kwargs, context):
    if conv_order is not None and isinstance(context.module, nn.Conv) and \
        context.method_name == "__call__":
      path = "/".join(context.module.path)
      if path not in conv_order:
        conv_order.append(path)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    return jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                                              train=False))


def check_classes(found: int, wanted: int | None, where: str) -> int:
  if wanted is not None and int(wanted) != int(found):
    raise ConversionError(f"The weights have {found} classes ({where}) but num_classes={wanted} was "
                          "asked for.")
  return int(found)


# Names of a layer's tensors in each source framework.
NAMES = {
    "torch": dict(sep=".", kernel="weight", bias="bias", scale="weight", offset="bias",
                  mean="running_mean", var="running_var",
                  ignore=("num_batches_tracked",)),
    "keras": dict(sep="/", kernel="kernel", bias="bias", scale="gamma", offset="beta",
                  mean="moving_mean", var="moving_variance", ignore=()),
}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    path = f"{prefix}/{key}" if prefix else str(key)
    if isinstance(value, Mapping):
      out.update(_flat(value, path))
    else:
      out[path] = value
  return out


def _unflat(flat: dict[str, np.ndarray]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for path, value in flat.items():
    node = out
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return out


class Mapper:
  """Fills a classic module's variables from named source tensors, collecting every problem."""

  def __init__(self, state_dict: Mapping[str, Any], abstract: Mapping[str, Any], framework: str):
    self.names = NAMES[framework]
    self.framework = framework
    self.source = dict(state_dict)
    self.used: set[str] = set()
    self.missing: list[str] = []
    self.misshapen: list[str] = []
    self.targets = {c: _flat(abstract.get(c, {})) for c in ("params", "batch_stats")}
    self.values: dict[str, dict[str, np.ndarray]] = {"params": {}, "batch_stats": {}}

  # -- source side --------------------------------------------------------------------------
  def name(self, layer: str, tensor: str) -> str:
    return f"{layer}{self.names['sep']}{self.names[tensor]}"

  def has(self, layer: str, tensor: str) -> bool:
    return self.name(layer, tensor) in self.source

  def take(self, name: str) -> np.ndarray | None:
    if name not in self.source:
      self.missing.append(name)
      return None
    self.used.add(name)
    return to_numpy(self.source[name])

  # -- target side --------------------------------------------------------------------------
  def target_has(self, path: str, collection: str = "params") -> bool:
    return path in self.targets[collection]

  def put(self, path: str, value: np.ndarray | None, source_name: str,
          collection: str = "params", transform: Callable[[np.ndarray], np.ndarray] | None = None,
          source_shape: tuple[int, ...] | None = None) -> None:
    if value is None:
      return
    if path not in self.targets[collection]:
      raise KeyError(f"converter bug: the classic module has no {collection} {path!r}")
    want = tuple(self.targets[collection][path].shape)
    try:
      out = transform(value) if transform is not None else value
    except ValueError:
      out = None
    if out is None or tuple(out.shape) != want:
      self.misshapen.append(f"{source_name} has shape {tuple(value.shape)}, expected "
                            f"{source_shape or want} (for {collection} {path})")
      return
    self.values[collection][path] = np.ascontiguousarray(out, np.float32)

  # -- layers -------------------------------------------------------------------------------
  def conv(self, dst: str, src: str, flip_input_channels: bool = False) -> np.ndarray | None:
    """A convolution. Returns the source's bias if the classic conv has none (for `bn(shift=)`)."""
    name = self.name(src, "kernel")
    w = self.take(name)
    if w is not None and self.framework == "torch" and w.ndim == 4:
      torch_shape = None
      if self.target_has(f"{dst}/kernel"):
        kh, kw, cin, cout = self.targets["params"][f"{dst}/kernel"].shape
        torch_shape = (cout, cin, kh, kw)
      self.put(f"{dst}/kernel", w, name, transform=lambda a: a.transpose(2, 3, 1, 0),
               source_shape=torch_shape)
    elif w is not None:
      self.put(f"{dst}/kernel", w, name)
    if w is not None and flip_input_channels and f"{dst}/kernel" in self.values["params"]:
      self.values["params"][f"{dst}/kernel"] = self.values["params"][f"{dst}/kernel"][:, :, ::-1, :].copy()
    bias_name = self.name(src, "bias")
    if self.target_has(f"{dst}/bias"):
      self.put(f"{dst}/bias", self.take(bias_name), bias_name)
    elif bias_name in self.source:
      return self.take(bias_name)
    return None

  def bn(self, dst: str, src: str, shift: np.ndarray | None = None, scale_optional: bool = False) -> None:
    """BatchNorm. `shift`: a preceding conv's bias, folded into the running mean (exact).
    `scale_optional`: a source BN without a learned scale (TF/Keras scale=False) loads scale 1."""
    scale_name = self.name(src, "scale")
    if scale_optional and scale_name not in self.source:
      shape = self.targets["params"].get(f"{dst}/scale")
      if shape is not None:
        self.values["params"][f"{dst}/scale"] = np.ones(shape.shape, np.float32)
    else:
      self.put(f"{dst}/scale", self.take(scale_name), scale_name)
    for tensor, path, coll in (("offset", "bias", "params"), ("mean", "mean", "batch_stats"),
                               ("var", "var", "batch_stats")):
      name = self.name(src, tensor)
      value = self.take(name)
      if tensor == "mean" and value is not None and shift is not None:
        if shift.shape == value.shape:
          value = value - shift
        else:
          self.misshapen.append(f"conv bias of shape {shift.shape} before {name} {value.shape}")
      self.put(f"{dst}/{path}", value, name, collection=coll)
    for ignored in self.names["ignore"]:
      self.used.add(f"{src}{self.names['sep']}{ignored}")

  def dense(self, dst: str, src: str, chw: tuple[int, int, int] | None = None) -> None:
    """A linear layer. `chw`: the input is a flattened (C, H, W) map in the source (PyTorch's NCHW
    flatten) and an (H, W, C) one in classic: the rows are permuted accordingly."""
    name = self.name(src, "kernel")
    w = self.take(name)
    if w is not None:
      if self.framework == "torch":
        def transform(a):
          a = a.T
          if chw is not None:
            c, h, ww = chw
            a = a.reshape(c, h, ww, -1).transpose(1, 2, 0, 3).reshape(h * ww * c, -1)
          return a
        want = self.targets["params"].get(f"{dst}/kernel")
        self.put(f"{dst}/kernel", w, name, transform=transform,
                 source_shape=None if want is None else tuple(want.shape[::-1]))
      else:
        self.put(f"{dst}/kernel", w, name)
    bias_name = self.name(src, "bias")
    self.put(f"{dst}/bias", self.take(bias_name), bias_name)

  # -- end ----------------------------------------------------------------------------------
  def finish(self, what: str) -> dict[str, Any]:
    unused = sorted(k for k in self.source if k not in self.used
                    and not any(k.endswith(self.names["sep"] + i) for i in self.names["ignore"]))
    problems = []
    if self.missing:
      problems.append(f"missing tensors: {', '.join(self.missing)}")
    if self.misshapen:
      problems.append(f"misshapen tensors: {'; '.join(self.misshapen)}")
    if unused:
      problems.append(f"unexpected tensors (not part of {what}): {', '.join(unused)}")
    if problems:
      raise ConversionError(f"The weights do not fit {what}: " + ". ".join(problems) + ".")
    unfilled = [f"{c}/{p}" for c, t in self.targets.items() for p in t if p not in self.values[c]]
    if unfilled:  # every source tensor was used yet a leaf is empty: the name map is incomplete
      raise ConversionError(f"converter bug: {what} variables left unfilled: {', '.join(unfilled)}")
    out = {"params": _unflat(self.values["params"])}
    if self.values["batch_stats"]:
      out["batch_stats"] = _unflat(self.values["batch_stats"])
    return out

  # -- classic side walks -------------------------------------------------------------------
  def conv_units(self, order: list[str]) -> list[tuple[str, bool]]:
    """Classic conv layers in call order (from `abstract_variables(conv_order=)`): (path of the conv
    module, followed by a BN?). A ConvBN 'x' gives ('x/conv', True); a bare conv 'x' ('x', False)."""
    out = []
    for module in order:
      parent = module.rsplit("/", 1)[0] if "/" in module else ""
      has_bn = module.endswith("/conv") and f"{parent}/bn/bias" in self.targets["params"]
      out.append((module, has_bn))
    return out

  def bn_path(self, conv_path: str) -> str:
    return conv_path.rsplit("/", 1)[0] + "/bn"
