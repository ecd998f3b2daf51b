"""`python -m classic.report` on a real (tiny) sweep: table rows and columns, numbers, plot files."""

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import REPO, read_metrics


def test_report_of_the_recorded_degradation_runs(tmp_path):
  """The report of real runs (docs/degradation/runs: plain and residual 20/56, 2,000 iterations on the
  CIFAR-10 JPEGs): the swept axes, one row per run with its final numbers, the Fig. 6 plots."""
  from classic import report
  runs = REPO / "docs" / "degradation" / "runs"
  summary = report.report(runs, tmp_path)
  assert summary["runs"] == 4 and summary["fields"] == ["model.depth", "model.residual"]
  with open(tmp_path / "report.csv") as f:
    table = {row["run"]: row for row in csv.DictReader(f)}
  assert set(table) == {"plain20", "plain56", "resnet20", "resnet56"}
  assert table["resnet20"]["params"] == "269722" and table["plain20"]["params"] == "269722"  # option A: no extra
  final = read_metrics(runs / "plain56")
  assert abs(float(table["plain56"]["test_top1_err"]) - (1 - [m for m in final if "eval/top1" in m][-1]["eval/top1"])) < 1e-9
  assert table["plain56"]["steps"] == "2000"
  assert Image.open(tmp_path / "report.png").size == (700, 450)
  assert Image.open(tmp_path / "report_model_residual.png").size == (900, 400)


@pytest.mark.slow
def test_report_of_a_two_run_sweep(tmp_path):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text("from launch.sweep import product\n"
                        "def get_sweep():\n"
                        "  return product(config=['configs/lenet.py:digits'], **{'model.pool': ['trainable', 'max']})\n")
  root = tmp_path / "runs"
  subprocess.run([sys.executable, "-m", "launch.sweep", str(sweep_file), f"--workdir={root}", "--set=train_steps=40",
                  "--set=log_every=10", "--set=eval_every=20", "--set=checkpoint_every=40", "--parallel=2"],
                 cwd=REPO, check=True, capture_output=True, timeout=600)
  out = subprocess.run([sys.executable, "-m", "classic.report", str(root)], cwd=REPO, check=True,
                       capture_output=True, text=True, timeout=300).stdout
  summary = json.loads(out.strip().splitlines()[-1])
  assert summary["runs"] == 2 and summary["fields"] == ["model.pool"]
  with open(root / "report.csv") as f:
    table = {row["run"]: row for row in csv.DictReader(f)}
  assert set(table) == {"digits-pool=trainable", "digits-pool=max"}
  trainable = table["digits-pool=trainable"]
  assert trainable["model.pool"] == "trainable" and trainable["steps"] == "40" and trainable["params"] == "60000"
  assert int(table["digits-pool=max"]["params"]) == 60000 - 44  # no trainable subsampling coefficients
  final = read_metrics(root / "digits-pool=trainable")[-1]
  assert abs(float(trainable["test_top1_err"]) - (1 - final["eval/top1"])) < 1e-9
  assert abs(float(trainable["final_train_err"]) - final["train/top1_err"]) < 1e-9
  md = (root / "report.md").read_text().splitlines()
  assert md[0].startswith("| run | model.pool | params | macs |") and len(md) == 4
  assert Image.open(root / "report.png").size == (700, 450)
  assert Image.open(root / "report_model_pool.png").size == (900, 400)


def test_report_of_an_empty_directory_says_what_it_expects(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "classic.report", str(tmp_path)], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 1 and "expected" in proc.stderr and "Traceback" not in proc.stderr


def test_swept_fields_ignore_fields_newer_runs_have_and_older_lack():
  from classic.report import swept_fields
  runs = [{"config": {"model": {"depth": 20, "lesion": []}, "seed": 0, "eval_every": 500}},
          {"config": {"model": {"depth": 56}, "seed": 0, "eval_every": 1000}},
          {"config": {"model": {"depth": 56, "lesion": []}, "seed": 1, "eval_every": 500}}]
  assert swept_fields(runs) == ["model.depth", "seed"]


def test_a_short_run_draws_its_few_points_with_markers_and_its_one_evaluation_visibly(tmp_path):
  """A 200-step run: two logged training points and a single evaluation. Each point gets a marker, the
  evaluation is a filled dot in the PNG itself, and the legend shows only what is drawn."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np

  from classic import report
  metrics = [{"step": 100, "train/top1_err": 0.8}, {"step": 200, "train/top1_err": 0.7, "eval/top1": 0.35}]
  colour = (0.84, 0.15, 0.16)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  report._curves(ax, [{"name": "plain20", "metrics": metrics}], {"plain20": colour})
  lines = {line.get_gid(): line for line in ax.lines}
  test, train = lines["test:plain20"], lines["train:plain20"]
  assert test.get_marker() == "o" and list(test.get_xdata()) == [200]
  np.testing.assert_allclose(test.get_ydata(), [65.0])
  assert train.get_marker() == "." and train.get_linestyle() == "--" and list(train.get_xdata()) == [100, 200]
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ["plain20", "training error", "test error"]
  fig.savefig(tmp_path / "plot.png", dpi=100)
  x, y = ax.transData.transform((200, 65.0))
  png = np.asarray(Image.open(tmp_path / "plot.png").convert("RGB")).astype(int)
  row, col = int(round(png.shape[0] - y)), int(round(x))
  patch = png[row - 3:row + 4, col - 3:col + 4].reshape(-1, 3)
  assert (np.abs(patch - np.array(colour) * 255).max(1) < 40).sum() >= 25   # a dot of 7x7 px, not a hairline
  plt.close(fig)
