"""The sweep launcher: names, commands, dry runs, a real tiny sweep, skipping what is finished."""

import subprocess
import sys

from launch import sweep
from tests.conftest import REPO, read_metrics


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600)


def test_product_zip_and_names():
  runs = sweep.product(config=["configs/resnet.py:resnet20"], **{"model.shortcut": ["A", "B"]})
  assert [sweep.run_name(r) for r in runs] == ["resnet20-shortcut=A", "resnet20-shortcut=B"]
  assert sweep.zip_axes(a=[1, 2], b=[3, 4]) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_degradation_dry_run_lists_plain_and_residual_at_every_depth(tmp_path):
  out = launch("launch/sweeps/degradation.py", f"--workdir={tmp_path}", "--dry-run",
               "--set=dataset=../shared/data/cifar10-jpg.tar.gz", "--only=(20|56)$")
  rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
  assert [r[0] for r in rows] == ["plain20", "resnet20", "plain56", "resnet56"]
  assert all(r[1] == "to run" for r in rows)
  assert rows[0][2].endswith(f"--config=configs/resnet.py:plain20 --config.dataset=../shared/data/cifar10-jpg.tar.gz "
                             f"--workdir={tmp_path}/plain20")


def test_a_tiny_sweep_runs_and_a_rerun_skips_finished_runs(tmp_path):
  sweep_file = tmp_path / "tiny.py"
  sweep_file.write_text(
      "from launch.sweep import product\n"
      "def get_sweep():\n"
      "  return product(config=['configs/lenet.py:digits'], **{'model.pool': ['trainable', 'max']})\n")
  root = tmp_path / "runs"
  args = [str(sweep_file), f"--workdir={root}", "--set=train_steps=20", "--set=log_every=10",
          "--set=eval_every=20", "--set=checkpoint_every=20", "--parallel=2"]
  first = launch(*args)
  assert first.returncode == 0, first.stderr
  assert "2 runs, 0 finished, 2 to run" in first.stdout
  for name in ("digits-pool=trainable", "digits-pool=max"):
    assert read_metrics(root / name)[-1]["eval/count"] == 360
  again = launch(*args)
  assert "2 runs, 2 finished, 0 to run" in again.stdout
  assert launch(*args, "--dry-run").stdout.count("\tfinished\t") == 2
