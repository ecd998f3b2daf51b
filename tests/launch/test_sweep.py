"""The sweep launcher: names, commands, dry runs, a real tiny sweep, skipping what is finished."""

import subprocess
import sys

import pytest

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


SLURM_GOLDEN = """#!/bin/bash
#SBATCH --job-name=classic-degradation
#SBATCH --array=0-1
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --output=/shared/runs/slurm-%A_%a.out
set -euo pipefail
RUNS=(
  '--config=configs/resnet.py:plain20 --config.train_steps=2000 --workdir=/shared/runs/plain20'  # plain20
  '--config=configs/resnet.py:resnet20 --config.train_steps=2000 --workdir=/shared/runs/resnet20'  # resnet20
)
srun python -m classic.main ${RUNS[$SLURM_ARRAY_TASK_ID]}
"""

TPU_GOLDEN = """# resnet20
gcloud compute tpus tpu-vm ssh v4-32 --zone=us-central2-b --worker=all \
--command='cd ~/classic && python3 -m classic.main --config=configs/resnet.py:resnet20 --workdir=/mnt/runs/resnet20'
"""


def test_slurm_array_script_is_the_golden_text_and_valid_bash(tmp_path):
  out = launch("launch/sweeps/degradation.py", "--workdir=/shared/runs", "--only=^(plain|resnet)20$",
               "--set=train_steps=2000", "--emit=slurm", "--nodes=2", "--gpus_per_node=8").stdout
  assert out == SLURM_GOLDEN
  script = tmp_path / "job.sh"
  script.write_text(out)
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_tpu_vm_commands_are_the_golden_text():
  out = launch("launch/sweeps/degradation.py", "--workdir=/mnt/runs", "--only=^resnet20$", "--emit=tpu",
               "--tpu=v4-32", "--zone=us-central2-b").stdout
  assert out == TPU_GOLDEN


def test_every_shipped_sweep_lists_runs_whose_overrides_are_config_fields():
  import importlib
  from pathlib import Path
  for path in sorted(Path(REPO, "launch", "sweeps").glob("*.py")):
    if path.stem == "__init__":
      continue
    runs = sweep.load(str(path))
    names = [sweep.run_name(r) for r in runs]
    assert len(runs) >= 2 and len(set(names)) == len(names), path.stem
    for run in runs:
      file, variant = run["config"].split(":")
      config = importlib.import_module(f"configs.{Path(file).stem}").get_config(variant)
      for key, value in run.items():
        if key == "config":
          continue
        node = config
        for part in key.split("."):
          node = node[part]  # raises KeyError for a field the config does not have
        assert type(node) is type(value), (path.stem, key)


def test_parallel_runs_get_disjoint_devices(tmp_path):
  from launch.sweep import partition, start
  assert partition(2, 8, [0, 1]) == [{"env": {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}},
                                     {"env": {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}}]
  assert partition(3, 0, [0, 1, 2, 3, 4, 5]) == [{"cpus": {0, 1}}, {"cpus": {2, 3}}, {"cpus": {4, 5}}]
  assert partition(4, 0, [0, 1]) == [{}, {}, {}, {}]  # more runs than cores: shared
  with pytest.raises(ValueError, match="needs at least 3 GPUs"):
    partition(3, 2, [0, 1])
  # A started run really is confined to its share.
  cpu = sorted(__import__("os").sched_getaffinity(0))[-1]
  with open(tmp_path / "log.txt", "w") as log:
    proc = start([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)), "
                  "os.environ.get('CUDA_VISIBLE_DEVICES'))"], {"cpus": {cpu}}, log)
    proc.wait(timeout=60)
  assert (tmp_path / "log.txt").read_text().split() == [f"[{cpu}]", "None"]
  with open(tmp_path / "log2.txt", "w") as log:
    start([sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
          {"env": {"CUDA_VISIBLE_DEVICES": "4,5"}}, log).wait(timeout=60)
  assert (tmp_path / "log2.txt").read_text().strip() == "4,5"
