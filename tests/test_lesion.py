"""`python -m classic.lesion` (Veit et al. 2016) on real runs: a residual and a plain net trained on
the digits, one row per deleted block, the intact row equal to the run's own final evaluation."""

import csv
import json
import pathlib
import re
import subprocess
import sys

import orbax.checkpoint
import pytest
from PIL import Image

from tests.conftest import REPO, read_metrics, run_main

DIGITS = ["--config.dataset=digits", "--config.channels=1", "--config.mean=(0.,)", "--config.std=(255.,)",
          "--config.model.depth=8", "--config.train_steps=100", "--config.log_every=50",
          "--config.eval_every=100", "--config.checkpoint_every=100", "--config.batch_size=64"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("lesion")
  for kind in ("resnet", "plain"):
    run_main(f"--config=configs/resnet.py:{kind}20", *DIGITS, f"--workdir={root / kind}")
  return root


def lesion(*args):
  return subprocess.run([sys.executable, "-m", "classic.lesion", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600)


@pytest.mark.slow
def test_lesion_table_and_plot(runs):
  out = runs / "out"
  proc = lesion(f"--workdir={runs / 'resnet'}", f"--workdir={runs / 'plain'}", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  # the command wrapper keeps Orbax's per-restore INFO lines off the console (absl names the file)
  orbax_files = ({p.name for p in pathlib.Path(orbax.checkpoint.__file__).parent.parent.rglob("*.py")}
                 - {p.name for p in pathlib.Path(REPO, "classic").rglob("*.py")})
  info = [m.group(1) for m in re.finditer(r"^I\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\]", proc.stderr, re.M)]
  assert info and not orbax_files & set(info), sorted(set(info))
  assert json.loads(proc.stdout.strip().splitlines()[-1])["rows"] == 8
  with open(out / "lesion.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["run", "residual", "step", "index", "deleted", "top1_err", "top5_err", "examples"]
  # depth 8 = 3 blocks, one per stage; the intact net first
  assert [r["deleted"] for r in rows[:4]] == ["none", "stage1_block1", "stage2_block1", "stage3_block1"]
  assert [r["run"] for r in rows] == ["resnet"] * 4 + ["plain"] * 4
  for kind in ("resnet", "plain"):
    intact = next(r for r in rows if r["run"] == kind and r["deleted"] == "none")
    final = read_metrics(runs / kind)[-1]
    assert float(intact["top1_err"]) == pytest.approx(1 - final["eval/top1"], abs=1e-9)
    assert int(intact["examples"]) == final["eval/count"] == 360
    lesioned = [float(r["top1_err"]) for r in rows if r["run"] == kind and r["deleted"] != "none"]
    assert max(lesioned) > float(intact["top1_err"])  # removing a block of a 3-block net hurts
  assert (out / "lesion.md").read_text().count("\n") == 10
  assert Image.open(out / "lesion.png").size == (700, 400)


@pytest.mark.slow
def test_lesion_on_a_subset(runs, tmp_path):
  proc = lesion(f"--workdir={runs / 'plain'}", "--examples=100", f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "lesion.csv") as f:
    assert {r["examples"] for r in csv.DictReader(f)} == {"100"}


def test_lesion_refuses_what_it_cannot_lesion(tmp_path):
  proc = lesion(f"--workdir={tmp_path / 'nothing'}")
  assert proc.returncode == 1 and "No config.json" in proc.stderr
  lenet = tmp_path / "lenet"
  lenet.mkdir()
  from classic.train import checkpoint
  from configs import common
  checkpoint.write_config(str(lenet), common.load("configs/lenet.py:digits"))   # a LeNet run's record
  proc = lesion(f"--workdir={lenet}")
  assert proc.returncode == 1 and "needs a ResNet or plain net" in proc.stderr
