"""Runs whose data stays on the device (config.data_on_device), K steps per call and N seeds in one
program (config.replicas): the numbers a user compares, and their exact resume."""

import json

import numpy as np
import pytest

from tests.conftest import read_metrics, run_main

DIGITS = ["--config=configs/lenet.py:digits", "--config.data_on_device=True", "--config.train_steps=40",
          "--config.log_every=8", "--config.eval_every=40", "--config.checkpoint_every=16",
          "--config.optimizer.schedule=constant"]   # a run stopped by its train_steps keeps its schedule
TIMING = ("img_per_s", "wait_for_data_frac", "eval_seconds")


def numbers(workdir) -> list[dict]:
  """metrics.jsonl without timings, nor the evaluation that a run stopped at step 16 made there."""
  return [{k: v for k, v in m.items() if k not in TIMING and not (m["step"] == 16 and k.startswith("eval"))}
          for m in read_metrics(workdir)]


def replica(metrics: list[dict], i: int) -> list[dict]:
  """Replica i's own values, under the single run's names."""
  return [{"step": m["step"], **{k[:-len("_replicas")]: v[i] for k, v in m.items() if k.endswith("_replicas")}}
          for m in metrics]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The digits on the device: seed 0 and seed 2 alone, one call per step; 3 replicas (seeds 0, 1, 2)
  with 8 steps per call, stopped by its train_steps at 16 and resumed to 40."""
  root = tmp_path_factory.mktemp("on_device")
  run_main(*DIGITS, f"--workdir={root / 'seed0'}")
  run_main(*DIGITS, "--config.seed=2", f"--workdir={root / 'seed2'}")
  run_main(*DIGITS, "--config.replicas=3", "--config.steps_per_call=8", "--config.train_steps=16",
           f"--workdir={root / 'three'}")
  run_main(*DIGITS, "--config.replicas=3", "--config.steps_per_call=8", f"--workdir={root / 'three'}")
  run_main(*DIGITS, "--config.replicas=3", "--config.steps_per_call=8", f"--workdir={root / 'whole'}")
  numbered = {name: numbers(root / name) for name in ("seed0", "seed2", "three", "whole")}
  import shutil
  shutil.rmtree(root / "whole")       # the report below reads seed0, seed2 and three
  return numbered | {"root": root}


def test_replicas_log_each_seed_and_their_mean_and_std(runs):
  three = runs["three"]
  assert [m["step"] for m in three] == [8, 16, 24, 32, 40]
  final = three[-1]
  top1 = final["eval/top1_replicas"]
  assert len(top1) == 3 and len(set(top1)) > 1     # three different runs
  assert final["eval/top1"] == pytest.approx(np.mean(top1), abs=1e-12)
  assert final["eval/top1_std"] == pytest.approx(np.std(top1, ddof=1), abs=1e-12)
  assert len(final["train/loss_replicas"]) == 3 and "train/loss_std" in final
  assert final["eval/count"] == 360                 # every test image, for each replica
  config = json.loads((runs["root"] / "three" / "config.json").read_text())
  assert config["replicas"] == 3 and config["data_on_device"] is True


def test_replica_i_is_the_run_of_seed_plus_i_and_resumes_exactly(runs):
  """Replica i is the single run of seed + i to float tolerance: vmap batches LeNet's layers into other
  kernels. On jax 0.10.2's XLA:CPU they are bit for bit the same; on jax 0.12 the first window (8 steps)
  agrees to 5e-5, and then the two float orders drift apart as training amplifies them (18 % in the
  gradient norm by step 24): so the first window is compared. The replicated run stopped at 16 and
  resumed from the checkpoint that holds all three equals the uninterrupted one bit for bit."""
  seed0, seed2, three = runs["seed0"], runs["seed2"], runs["three"]
  assert three == runs["whole"]
  for i, single in ((0, seed0), (2, seed2)):
    mine, theirs = replica(three, i)[0], single[0]
    assert mine["step"] == theirs["step"] == 8
    for key in ("train/loss", "train/grad_norm", "train/top1_err", "train/lr"):
      assert mine[key] == pytest.approx(theirs[key], rel=1e-3), (i, key)
  assert seed0 != seed2


def test_steps_per_call_on_the_device_logs_the_single_step_numbers(tmp_path, runs):
  """8 steps per call, stopped at 16 and resumed: the numbers of one call per step, bit for bit."""
  run_main(*DIGITS, "--config.steps_per_call=8", "--config.train_steps=16", f"--workdir={tmp_path}")
  run_main(*DIGITS, "--config.steps_per_call=8", f"--workdir={tmp_path}")
  assert numbers(tmp_path) == runs["seed0"] and len(runs["seed0"]) == 5


def test_replicas_of_a_batch_norm_net_agree_with_single_runs_to_float_tolerance():
  """ResNet (BN, 3x3 convolutions) batched over replicas by vmap runs other convolution kernels on CPU:
  replica 1's first step equals the single run of seed 1 to 1e-5 relative (seen: 4e-7)."""
  import jax
  from classic.train import mesh as mesh_lib, setup
  from configs import common
  from tests.data.test_on_device import coordinate_images

  source = coordinate_images(64)
  mesh = mesh_lib.make_mesh()
  losses = {}
  for seed, n in ((1, 1), (0, 2)):
    c = common.load("configs/resnet.py:resnet20")
    c.model.depth, c.batch_size, c.data_on_device, c.seed, c.replicas = 8, 16, True, seed, n
    program = setup.build(c, mesh)
    state, metrics = program.step_fn(program.init(), *program.device_inputs(source, c, mesh, 1))
    losses[n] = jax.device_get(metrics)
  for key in ("train/loss", "train/grad_norm"):
    assert losses[2][key].shape == (2,)
    np.testing.assert_allclose(losses[2][key][1], losses[1][key], rtol=1e-5, err_msg=key)
    assert abs(losses[2][key][0] - losses[2][key][1]) > 1e-4   # the two replicas are different runs


def test_the_report_shows_replicated_runs_as_mean_and_std(runs, tmp_path):
  """classic.report: a replicated run's errors are the replicas' mean ± their std (report.md), with
  `*_std` columns in report.csv, and its test-error curve gets a band of one std."""
  import csv

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from classic import report
  summary = report.report(runs["root"], tmp_path)
  assert summary["runs"] == 3
  with open(tmp_path / "report.csv") as f:
    table = {row["run"]: row for row in csv.DictReader(f)}
  final = runs["three"][-1]
  three = table["three"]
  assert three["replicas"] == "3" and table["seed0"]["replicas"] == "1"
  assert float(three["test_top1_err"]) == pytest.approx(1 - final["eval/top1"], abs=1e-12)
  assert float(three["test_top1_err_std"]) == pytest.approx(final["eval/top1_std"], abs=1e-12)
  assert table["seed0"]["test_top1_err_std"] == ""            # one seed: no spread
  md = (tmp_path / "report.md").read_text().splitlines()
  assert "test_top1_err_std" not in md[0]
  assert f"{1 - final['eval/top1']:.4f} ± {final['eval/top1_std']:.4f}" in next(l for l in md if l.startswith("| three"))
  fig, ax = plt.subplots()
  loaded = report.load_runs(runs["root"])
  report._curves(ax, loaded, {r["name"]: "k" for r in loaded})
  assert [c.get_gid() for c in ax.collections] == ["test_std:three"]
  plt.close(fig)
