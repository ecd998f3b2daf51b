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

def summarise(config) -> dict:
  """The table of `config.model` at the config's image size and channels."""
  return summarise_model(config.model, (config.image_size, config.image_size, config.channels),
                         config.variant)


def summarise_model(model_config, input_shape, label: str) -> dict:
  from classic import models
  from classic.models import counts

  module = models.build(model_config)
  shape = (1, *input_shape)
  rows = counts.layer_table(module, shape)
  totals = counts.totals(module, shape)
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
    reference = models.reference(variant)   # what the paper states, kept beside the variant
    lines.append(f"| `{variant}` | {'x'.join(map(str, s['input']))} | {s['params']:,} | "
                 f"{s['macs'] / 1e6:,.1f} M | {reference.describe() if reference else ''} |")
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
