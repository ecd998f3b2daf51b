r"""Per-layer output shapes, parameters and multiply-accumulates of a config's model.

  python -m classic.summary --config=configs/vgg.py:D
  python -m classic.summary --config=configs/resnet.py:resnet50 --json   # {"params": ..., "macs": ...}
  python -m classic.summary --all          # every model variant beside its paper's figures
  python -m classic.summary --deviations   # every named deviation from the papers

Counts are trainable parameters (BatchNorm running statistics excluded; training-only heads such as
GoogLeNet's auxiliary classifiers included) and MACs of one eval-mode forward pass of one image at the
variant's input size. Nothing is computed: the model is traced with jax.eval_shape.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

from classic import command

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and variant.", lock_config=True)
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of the table.")
_DEVIATIONS = flags.DEFINE_bool("deviations", False, "The list of every named deviation from the papers "
                                "(the DEVIATIONS of configs/ and classic/models/; docs/models.md has it).")
_ALL = flags.DEFINE_bool("all", False, "A Markdown table of every model variant (classic.models), "
                         "beside the papers' figures (docs/models.md is made with it).")

# What the papers (or, where a paper gives none, the reference implementation) state.
PAPER = {
    "lenet5": "60,000 params (LeCun 1998 §II.B)",
    "alexnet": "60M params (Krizhevsky 2012 §1)",
    "alexnet_1tower": "61.1M params (torchvision)",
    "vgg11": "133M params (Table 2)", "vgg11_lrn": "133M params (Table 2)", "vgg13": "133M params (Table 2)",
    "vgg16_1x1": "134M params (Table 2)", "vgg16": "138M params (Table 2)", "vgg19": "144M params (Table 2)",
    "googlenet": "~6.8M params w/o aux heads, 1.5G MACs (Szegedy 2014 Table 1, §5)",
    "inception_v3": "27.16M params with aux head (torchvision); ~5G MACs (§6)",
    "inception_v4": "42.68M params (timm)",
    "inception_resnet_v2_tf_slim": "55.84M params (timm)",
    "resnet18": "1.8G FLOPs (mult-adds) (He 2015 Table 1)", "resnet34": "3.6G (Table 1)",
    "resnet50": "3.8G (Table 1)", "resnet101": "7.6G (Table 1)", "resnet152": "11.3G (Table 1)",
    "plain18": "1.8G (Table 1)", "plain34": "3.6G (Table 1)",
    "resnet18_a": "= plain18: option A adds no parameter (He 2015 §4.1, Table 2)", "resnet34_a": "= plain34 (Table 2)",
    "resnet20": "0.27M params (Table 6)", "resnet32": "0.46M (Table 6)",
    "resnet44": "0.66M (Table 6)", "resnet56": "0.85M (Table 6)",
    "resnet110": "1.7M (Table 6)", "resnet1202": "19.4M (Table 6)",
    "preact164": "1.7M params (He 2016 Table 2)", "preact1001": "10.2M params, BN excluded (He 2016)",
}


def summarise(config) -> dict:
  """The table of `config.model` at the config's image size and channels."""
  return summarise_model(config.model, (config.image_size, config.image_size, config.channels),
                         config.variant)


def summarise_model(model_config, input_shape, label: str) -> dict:
  from classic import models
  from classic.models import stats

  module = models.build(model_config)
  shape = (1, *input_shape)
  rows = stats.layer_table(module, shape)
  totals = stats.totals(module, shape)
  return {"variant": label, "input": list(shape[1:]), **totals,
          "layers": [{"path": r.path, "kind": r.kind, "output": list(r.output_shape), "params": r.params,
                      "macs": r.macs} for r in rows]}


def format_table(summary: dict) -> str:
  lines = [f"{summary['variant']}  input {tuple(summary['input'])}",
           f"{'layer':<48} {'kind':<22} {'output':<18} {'params':>12} {'MACs':>15}"]
  for r in summary["layers"]:
    lines.append(f"{r['path']:<48} {r['kind']:<22} {str(tuple(r['output'])):<18} {r['params']:>12,} {r['macs']:>15,}")
  lines.append(f"{'total':<90} {summary['params']:>12,} {summary['macs']:>15,}")
  return "\n".join(lines)


def markdown_all() -> str:
  from classic import models

  lines = ["| model variant | input | parameters | MACs / image | paper or reference |",
           "|---|---|---:|---:|---|"]
  for variant in models.variant_names():
    s = summarise_model(models.config(variant), models.input_shape(variant), variant)
    lines.append(f"| `{variant}` | {'x'.join(map(str, s['input']))} | {s['params']:,} | "
                 f"{s['macs'] / 1e6:,.1f} M | {PAPER.get(variant, '')} |")
  return "\n".join(lines)


def deviations() -> list[tuple[str, str]]:
  """(module file, deviation) for every DEVIATIONS entry of the config files and model families."""
  import importlib
  import pkgutil

  import configs
  from classic import models
  out = []
  for package in (configs, models):
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
      module = importlib.import_module(f"{package.__name__}.{info.name}")
      path = module.__name__.replace(".", "/") + ".py"
      out += [(path, text) for text in getattr(module, "DEVIATIONS", ())]
  return out


def markdown_deviations() -> str:
  """The deviations list of docs/models.md, grouped by file."""
  lines, current = [], None
  for path, text in deviations():
    if path != current:
      lines.append(f"- `{path}`")
      current = path
    lines.append(f"  - {text}")
  return "\n".join(lines)


def main(argv):
  del argv
  if _ALL.value:
    print(markdown_all())
    return
  if _DEVIATIONS.value:
    print(markdown_deviations())
    return
  if _CONFIG.value is None:
    raise app.UsageError("--config is required (or --all).")
  from classic.train import validate
  validate.check(_CONFIG.value, command.explicit_overrides())  # a bad or inert model field, in a sentence
  summary = summarise(_CONFIG.value)
  if _JSON.value:
    print(json.dumps({k: v for k, v in summary.items() if k != "layers"}))
  else:
    print(format_table(summary))


if __name__ == "__main__":
  command.run(main)
