r"""Tables and plots of a sweep's runs (finished or still running).

  python -m classic.report runs/degradation            # writes report.md, report.csv, report*.png there

Reads every ROOT/<run>/config.json and metrics.jsonl. The table has one row per run: its name, the
config fields that differ between runs (the swept axes), parameters, MACs per image, final and best
training error, final test top-1/top-5 error, images/s (median of the logged windows) and steps done.
A run of several seeds in one program (config.replicas=N) shows its errors as the mean over the N
replicas ± their standard deviation, as the papers report "mean ± std of N runs" (report.md; the
CSV has `*_std` columns beside the means, and `replicas`).
The plot follows He et al. 2015 Fig. 6: training error dashed, test error solid, against iterations,
one colour per run, with a band of ± one standard deviation around a replicated run's test error;
`report.png` holds every run, and each swept axis gets `report_<axis>.png` with one panel per value
of that axis.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from absl import app, flags

from classic import command

_OUT = flags.DEFINE_string("out", "", "Where to write the report (default: the sweep root).")

BOOKKEEPING = {"variant", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "cache_dir",
               "data_dir", "eval_batch_size", "init_from", "derived_from_data"}


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list) else v
  return out


def load_runs(root: Path) -> list[dict]:
  runs = []
  for workdir in sorted(p for p in root.iterdir() if (p / "config.json").exists()):
    metrics_path = workdir / "metrics.jsonl"
    metrics = []
    if metrics_path.exists():
      for line in metrics_path.read_text().splitlines():
        try:
          metrics.append(json.loads(line))
        except ValueError:  # a line cut by a kill
          continue
    runs.append({"name": workdir.name, "config": json.loads((workdir / "config.json").read_text()),
                 "metrics": metrics})
  return runs


def swept_fields(runs: list[dict]) -> list[str]:
  flat = [_flatten(r["config"]) for r in runs]
  keys = sorted(set().union(*flat))
  # A field that only some runs have, with a single value where present, came with a newer version of
  # the code (runs started before it was added lack it): not a swept axis.
  return [k for k in keys if k.split(".")[0] not in BOOKKEEPING
          and len({str(f[k]) for f in flat if k in f}) > 1]


def _size(config: dict) -> tuple[int | None, int | None]:
  try:
    import ml_collections

    from classic import models
    from classic.models import counts
    c = ml_collections.ConfigDict(config)
    totals = counts.totals(models.build(c.model), (1, c.image_size, c.image_size, c.get("channels", 3)))
    return totals["params"], totals["macs"]
  except Exception:  # a model this version cannot build: leave the cells empty
    return None, None


def rows(runs: list[dict], fields: list[str]) -> list[dict]:
  replicated = any(r["config"].get("replicas", 1) > 1 for r in runs)
  out = []
  for r in runs:
    m = r["metrics"]
    flat = _flatten(r["config"])
    train_err = [x["train/top1_err"] for x in m if "train/top1_err" in x]
    evals = [x for x in m if "eval/top1" in x]
    speeds = [x["img_per_s"] for x in m if "img_per_s" in x]
    params, macs = _size(r["config"])
    row = {
        "run": r["name"], **{f: flat.get(f) for f in fields}, "params": params, "macs": macs,
        "final_train_err": train_err[-1] if train_err else None,
        "best_train_err": min(train_err) if train_err else None,
        "test_top1_err": 1 - evals[-1]["eval/top1"] if evals else None,
        "test_top5_err": 1 - evals[-1]["eval/top5"] if evals else None,
        "img_per_s": statistics.median(speeds) if speeds else None,
        "steps": m[-1]["step"] if m else 0,
        "train_steps": r["config"].get("train_steps"),
    }
    if replicated:  # the spread over seeds of each error (the std of an error is that of its accuracy)
      row["replicas"] = r["config"].get("replicas", 1)
      last = lambda key: ([x[key] for x in m if key in x] or [None])[-1]
      row.update(final_train_err_std=last("train/top1_err_std"), test_top1_err_std=last("eval/top1_std"),
                 test_top5_err_std=last("eval/top5_std"))
    out.append(row)
  return out


def _cell(v) -> str:
  if v is None:
    return ""
  if isinstance(v, float):
    return f"{v:.4f}" if v < 10 else f"{v:,.0f}"
  if isinstance(v, int) and not isinstance(v, bool):
    return f"{v:,}"
  return str(v)


def write_tables(table: list[dict], out: Path) -> None:
  columns = list(table[0]) if table else ["run"]
  with open(out / "report.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(table)
  # report.md: "mean ± std" in one cell where a run has replicas; the CSV keeps the two columns
  shown = [c for c in columns if not (c.endswith("_std") and c[:-4] in columns)]

  def cell(row, c):
    std = row.get(f"{c}_std")
    return _cell(row[c]) + (f" ± {std:.4f}" if std is not None and row.get("replicas", 1) > 1 else "")
  lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
  lines += ["| " + " | ".join(cell(row, c) for c in shown) + " |" for row in table]
  (out / "report.md").write_text("\n".join(lines) + "\n")


# Below this many points a curve also draws a marker at each point: a short run's few evaluations
# (one, at its end, for a 200-step run) are then visible, not a bare line or nothing.
MARKERS_BELOW = 30


def _curves(ax, runs, colours):
  """He et al. Fig. 6: per run one colour, training error dashed, test error solid (with markers where
  there are few points). The legend names the runs by colour, and the two line styles once each."""
  from matplotlib.lines import Line2D
  handles = []
  for r in runs:
    m = r["metrics"]
    colour = colours[r["name"]]
    tr = [(x["step"], 100 * x["train/top1_err"]) for x in m if "train/top1_err" in x and x.get("mode") != "eval"]
    te = [(x["step"], 100 * (1 - x["eval/top1"])) for x in m if "eval/top1" in x and x.get("mode") != "eval"]
    if tr:
      ax.plot(*zip(*tr), "--", color=colour, linewidth=1, marker="." if len(tr) < MARKERS_BELOW else None,
              markersize=5, gid=f"train:{r['name']}")
    if te:
      ax.plot(*zip(*te), "-", color=colour, linewidth=2, marker="o" if len(te) < MARKERS_BELOW else None,
              markersize=6, gid=f"test:{r['name']}")
      spread = [(x["step"], 100 * x["eval/top1_std"]) for x in m if "eval/top1_std" in x and x.get("mode") != "eval"]
      if len(spread) == len(te):  # replicas: +- one standard deviation over the seeds
        steps, mean = zip(*te)
        std = [s for _, s in spread]
        ax.fill_between(steps, [a - b for a, b in zip(mean, std)], [a + b for a, b in zip(mean, std)],
                        color=colour, alpha=0.2, linewidth=0, gid=f"test_std:{r['name']}")
    if tr or te:
      handles.append(Line2D([], [], color=colour, linewidth=2, label=r["name"]))
  styles = [Line2D([], [], color="grey", linestyle="--", marker=".", linewidth=1, label="training error"),
            Line2D([], [], color="grey", linestyle="-", marker="o", linewidth=2, label="test error")]
  ax.set_xlabel("iterations")
  ax.set_ylabel("error (%)")
  ax.grid(alpha=0.3)
  ax.legend(handles=handles + styles, fontsize=7)


def write_plots(runs: list[dict], fields: list[str], out: Path) -> list[Path]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  cmap = plt.get_cmap("tab10")
  colours = {r["name"]: cmap(i % 10) for i, r in enumerate(runs)}
  written = []
  fig, ax = plt.subplots(figsize=(7, 4.5))
  _curves(ax, runs, colours)
  ax.set_title("training error (dashed), test error (solid, one point per evaluation)")
  fig.tight_layout()
  fig.savefig(out / "report.png", dpi=100)
  plt.close(fig)
  written.append(out / "report.png")
  for field in fields:
    values = sorted({str(_flatten(r["config"]).get(field)) for r in runs})
    fig, axes = plt.subplots(1, len(values), figsize=(4.5 * len(values), 4), squeeze=False, sharey=True)
    for ax, value in zip(axes[0], values):
      _curves(ax, [r for r in runs if str(_flatten(r["config"]).get(field)) == value], colours)
      ax.set_title(f"{field} = {value}")
    fig.tight_layout()
    path = out / f"report_{field.replace('.', '_')}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
  return written


def report(root: Path, out: Path | None = None) -> dict:
  out = out or root
  out.mkdir(parents=True, exist_ok=True)
  runs = load_runs(root)
  if not runs:
    raise FileNotFoundError(f"No runs in {root}: expected {root}/<run>/config.json and metrics.jsonl.")
  fields = swept_fields(runs)
  table = rows(runs, fields)
  write_tables(table, out)
  plots = write_plots(runs, fields, out)
  return {"runs": len(runs), "fields": fields, "plots": [str(p) for p in plots]}


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m classic.report ROOT [--out=DIR]")
  root = Path(argv[1])
  result = report(root, Path(_OUT.value) if _OUT.value else None)
  print(json.dumps(result))


if __name__ == "__main__":
  command.run(main)
