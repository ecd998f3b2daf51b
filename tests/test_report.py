"""`python -m classic.report` on a real (tiny) sweep: table rows and columns, numbers, plot files."""

import csv
import json
import subprocess
import sys

from PIL import Image

from tests.conftest import REPO, read_metrics


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
