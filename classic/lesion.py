r"""Lesion study (Veit, Wilber & Belongie 2016, "Residual networks behave like ensembles of
relatively shallow networks", §4, Fig. 3): delete one block at a time at test time and measure
the test error.

  python -m classic.lesion --workdir=runs/degradation/resnet56 --workdir=runs/degradation/plain56
  python -m classic.lesion --workdir=RUN --examples=2000 --out=docs/lesion   # a fixed random 2,000

Each workdir is a trained ResNet or plain net (its config.json and latest checkpoint). A deleted
residual block keeps only its shortcut (identity, or the projection where the shape changes); a
deleted plain block becomes the identity (subsampled and zero-padded where the shape changes), as
Veit et al. do for VGG. BatchNorm uses the trained running statistics; nothing is retrained.
Writes lesion.csv, lesion.md and lesion.png (test error against the deleted block, one line per
run, the intact net's error dashed) to --out (default: the first workdir). The paper's finding:
deleting any single block of a residual net costs little (except the downsampling ones), while
deleting any layer of a plain net destroys it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from absl import flags

from classic import command, models
from classic.data import sources
from classic.models.resnet import block_names
from classic.train import checkpoint
from classic.train.loop import Trainer

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "Trained run(s) to lesion (repeatable).")
_EXAMPLES = flags.DEFINE_integer("examples", 0, "Evaluate on N examples drawn at random (fixed) from the eval split "
                                 "(0: all of it).")
_OUT = flags.DEFINE_string("out", "", "Where to write lesion.{csv,md,png} (default: the first workdir).")
flags.mark_flag_as_required("workdir")


class LesionError(Exception):
  pass


def lesion_run(workdir: str, examples: int = 0) -> list[dict]:
  """One row per block (plus the intact net first): the test errors with that block deleted."""

  config = checkpoint.read_config(workdir)
  if config.model.name != "resnet":
    raise LesionError(f"{workdir}: the lesion study needs a ResNet or plain net (model.name 'resnet'), "
                      f"this run trained {config.model.name!r}.")
  if config.model.get("scan_blocks", False):
    raise LesionError(f"{workdir}: trained with model.scan_blocks=True; lesion needs per-block weights.")
  trainer = Trainer(config, workdir, eval_only=True)
  if trainer.checkpointer.latest_step() is None:
    raise LesionError(f"{workdir}: no checkpoint to lesion; train it first (python -m classic.main "
                      f"--workdir={workdir}).")
  if examples:
    trainer.eval_data.source = sources.subset(trainer.eval_data.source, examples)
  name = os.path.basename(os.path.normpath(workdir))
  residual = bool(config.model.residual)
  rows = []
  for index, block in enumerate([None] + block_names(config.model.depth, config.model.stem)):
    model = trainer.model if block is None else models.build(config.model, lesion=(block,))
    out = trainer.evaluate(model=model)
    rows.append({"run": name, "residual": residual, "step": trainer.start_step, "index": index,
                 "deleted": block or "none", "top1_err": 1 - out["eval/top1"],
                 "top5_err": 1 - out["eval/top5"], "examples": out["eval/count"]})
    print(f"{name}: deleted {block or 'nothing':<14} test error {100 * rows[-1]['top1_err']:6.2f}%",
          flush=True)
  trainer.checkpointer.close()
  return rows


def write(rows: list[dict], out: Path) -> list[Path]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  out.mkdir(parents=True, exist_ok=True)
  columns = list(rows[0])
  with open(out / "lesion.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in columns)
            + " |" for r in rows]
  (out / "lesion.md").write_text("\n".join(lines) + "\n")

  fig, ax = plt.subplots(figsize=(7, 4))
  for i, run in enumerate(dict.fromkeys(r["run"] for r in rows)):
    mine = [r for r in rows if r["run"] == run]
    colour = plt.get_cmap("tab10")(i % 10)
    ax.axhline(100 * mine[0]["top1_err"], color=colour, linestyle="--", linewidth=1)
    ax.plot([r["index"] for r in mine[1:]], [100 * r["top1_err"] for r in mine[1:]], "o-",
            color=colour, markersize=3, label=f"{run} (dashed: intact)")
  ax.set_xlabel("deleted block (1 = first)")
  ax.set_ylabel("test error (%)")
  ax.set_ylim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  ax.set_title("Lesion study: one block deleted at test time (Veit et al. 2016 Fig. 3)")
  fig.tight_layout()
  fig.savefig(out / "lesion.png", dpi=100)
  plt.close(fig)
  return [out / "lesion.csv", out / "lesion.md", out / "lesion.png"]


def main(argv):
  del argv
  rows = []
  for workdir in _WORKDIRS.value:
    rows += lesion_run(workdir, _EXAMPLES.value)
  paths = write(rows, Path(_OUT.value or _WORKDIRS.value[0]))
  print(json.dumps({"rows": len(rows), "written": [str(p) for p in paths]}))


if __name__ == "__main__":
  command.run(main, lambda e: str(e) if isinstance(e, LesionError) else None)
