"""The sweep launcher: names, commands, dry runs, a real tiny sweep, skipping what is finished."""

import json
import subprocess
import sys

import pytest

from launch import sweep
from tests.conftest import REPO, read_metrics


def launch(*args):
  return subprocess.run([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600)


def in_process(*args):
  """(exit code, stdout, stderr) of launch.sweep's main in this process."""
  import contextlib
  import io
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = sweep.main(list(args))
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else 1
      err.write(str(e.code))
  return code, out.getvalue(), err.getvalue()


def test_product_zip_and_names():
  runs = sweep.product(config=["configs/resnet.py:resnet20"], **{"model.shortcut": ["A", "B"]})
  assert [sweep.run_name(r) for r in runs] == ["resnet20-shortcut=A", "resnet20-shortcut=B"]
  assert sweep.zip_axes(a=[1, 2], b=[3, 4]) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_degradation_dry_run_lists_plain_and_residual_at_every_depth(tmp_path):
  out = launch("launch/sweeps/degradation.py", f"--workdir={tmp_path}", "--dry-run",
               "--set=dataset=../shared/data/cifar10-jpg.tar.gz", "--only=(20|56)$")
  rows = [line.split("\t") for line in out.stdout.strip().splitlines()]
  assert [r[0] for r in rows] == ["plain20", "resnet20", "plain56", "resnet56"]
  assert all(r[1] == "new" for r in rows)
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
  assert "2 runs: 0 finished, 0 to resume, 2 new" in first.stdout
  for name in ("digits-pool=trainable", "digits-pool=max"):
    assert read_metrics(root / name)[-1]["eval/count"] == 360
  # What starts nothing runs in this process (the launcher's own checks, without its start-up).
  assert in_process(*args)[0] == 0 and "2 runs: 2 finished, 0 to resume, 0 new" in in_process(*args)[1]
  dry = in_process(*args, "--dry-run")[1]
  for name in ("digits-pool=trainable", "digits-pool=max"):   # with the final test accuracy
    assert f"{name}\tfinished (step 20; test top-1 {read_metrics(root / name)[-1]['eval/top1']:.4f})\t" in dry
  assert "finished digits-pool=max (step 20; test top-1 " in first.stdout

  # A run's identity is its whole config, --set included: more steps resume the finished runs ...
  more = [a.replace("train_steps=20", "train_steps=30") for a in args]
  dry = in_process(*more, "--only=max", "--dry-run")[1]
  assert dry.split("\t")[:2] == ["digits-pool=max", "resume (at step 20 of 30)"]
  longer = launch(*more, "--only=max")
  assert "1 runs: 0 finished, 1 to resume, 0 new" in longer.stdout, longer.stderr
  assert read_metrics(root / "digits-pool=max")[-1]["step"] == 30
  # ... another learning rate is another experiment: refused, nothing started, the fields named.
  code, _, err = in_process(*more, "--set=optimizer.lr=0.5")
  assert code != 0 and "nothing was started" in err
  assert "digits-pool=max: optimizer.lr: 0.005 there, 0.5 now" in err
  assert read_metrics(root / "digits-pool=max")[-1]["step"] == 30
  assert "\tconflict (optimizer.lr: " in in_process(*more, "--set=optimizer.lr=0.5", "--dry-run")[1]


def test_bad_sets_and_selections_fail_before_anything_starts(tmp_path):
  base = ["launch/sweeps/degradation.py", f"--workdir={tmp_path}", "--only=20$"]
  typo = launch(*base, "--set=model.residul=True")
  assert typo.returncode != 0 and "plain20: the config has no field 'model.residul'; did you mean model.residual" in typo.stderr
  inert = launch(*base, "--set=model.shortcut=B", "--dry-run")
  assert inert.returncode != 0 and "plain20:" in inert.stderr and "has no shortcuts" in inert.stderr
  assert "resnet20:" not in inert.stderr  # the residual net uses the field
  bad_value = launch(*base, "--set=model.shortcut=D")
  assert "model.shortcut of resnet must be one of 'A', 'B', 'C'; got 'D'" in bad_value.stderr
  nothing = launch("launch/sweeps/degradation.py", f"--workdir={tmp_path}", "--only=resnet21")
  assert nothing.returncode != 0 and "matches no run" in nothing.stderr and "resnet20" in nothing.stderr
  assert not any(tmp_path.iterdir())


SLURM_GOLDEN = """#!/bin/bash
#SBATCH --job-name=classic-degradation
#SBATCH --array=0-1
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --output=/shared/runs/slurm-%A_%a.out
{setup}
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
  # The job runs where the launcher ran: the project's directory, the launcher's environment.
  setup = [f"cd {REPO}"] + ([f"source {sys.prefix}/bin/activate"] if sys.prefix != sys.base_prefix else [])
  assert out == SLURM_GOLDEN.replace("{setup}", "\n".join(setup))
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


@pytest.mark.slow
def test_one_ctrl_c_stops_a_two_run_sweep_and_the_stopped_run_resumes(tmp_path):
  """SIGINT to the launcher (a Ctrl-C): the running run checkpoints, is reported as stopped at its
  step (never as finished), the second run never starts, and the dry run shows where it resumes."""
  import os
  import signal
  import time
  sweep_file = tmp_path / "two.py"
  sweep_file.write_text("from launch.sweep import product\n"
                        "def get_sweep():\n"
                        "  return product(config=['configs/lenet.py:digits'], **{'model.pool': ['max', 'avg']})\n")
  root = tmp_path / "runs"
  args = [str(sweep_file), f"--workdir={root}", "--set=train_steps=100000", "--set=log_every=20",
          "--set=eval_every=100000", "--set=checkpoint_every=100000", "--progress_every=1"]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  proc = subprocess.Popen([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  first = root / "digits-pool=max"
  deadline = time.time() + 300
  while time.time() < deadline and sweep.last_step(first) < 40:
    time.sleep(0.2)
  proc.send_signal(signal.SIGINT)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-3000:]
  stopped = sweep.last_step(first)
  assert 40 <= stopped < 100000
  assert "started digits-pool=max [1 of 2]" in out and f"log {first / 'log.txt'}" in out
  assert f"] digits-pool=max: step " in out and " of 100000, ETA " in out          # progress lines
  assert f"stopped digits-pool=max at step {stopped} of 100000" in out and "finished digits" not in out
  assert "1 runs not started" in err and "rerun the same command to resume" in err
  assert not (root / "digits-pool=avg").exists()
  assert (first / "checkpoints" / str(stopped)).is_dir()
  dry = launch(*args, "--dry-run").stdout.splitlines()
  assert dry[0].split("\t")[1] == f"resume (at step {stopped} of 100000)" and dry[1].split("\t")[1] == "new"


def test_a_replicated_run_is_summed_up_as_mean_and_std_over_its_seeds(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      json.dumps({"step": 10, "train/loss": 1.0}) + "\n"
      + json.dumps({"step": 20, "eval/top1": 0.91, "eval/top1_std": 0.0125, "eval/top1_replicas": [0.9, 0.91, 0.92]})
      + "\n" + '{"step": 30, "train/lo')                 # a line cut by a kill
  assert sweep.test_result(tmp_path) == "test top-1 0.9100 ± 0.0125 over 3 seeds"
  (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 20, "eval/top1": 0.5}) + "\n")
  assert sweep.test_result(tmp_path) == "test top-1 0.5000"
  assert sweep.test_result(tmp_path / "none") == ""
