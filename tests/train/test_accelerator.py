"""Same command, same numbers on a GPU or TPU (config.deterministic, classic.platform): run with
`python -m pytest -m accelerator` on a machine with one; skipped, with the reason, elsewhere.

Each run is `python -m classic.main` in its own process, as users run it: two processes may autotune
to different kernels, which the autotuning results kept in the workdir prevent."""

import json

import pytest

from tests.conftest import read_metrics, requires_accelerator, run_interrupted, run_main

pytestmark = [pytest.mark.accelerator, requires_accelerator]

# A BatchNorm ResNet on the digits: convolutions and batch reductions, where GPU kernels may use atomics.
RUN = ["--config=configs/resnet.py:resnet20", "--config.dataset=digits", "--config.model.depth=8",
       "--config.augment=shift", "--config.batch_size=64", "--config.eval_batch_size=360",
       "--config.train_steps=400", "--config.log_every=50", "--config.eval_every=200",
       "--config.checkpoint_every=200"]
TIMING = ("img_per_s", "wait_for_data_frac", "eval_seconds", "partial_window")


def numbers(workdir):
  return [{k: v for k, v in m.items() if k not in TIMING} for m in read_metrics(workdir) if m["step"] % 50 == 0]


ON_DEVICE = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_two_identical_runs_are_bitwise_equal_and_a_resumed_run_equals_them(tmp_path, precision):
  args = RUN + [f"--config.half_precision={precision == 'bf16'}"]
  run_main(*args, f"--workdir={tmp_path / 'a'}", env=ON_DEVICE, devices=None)
  run_main(*args, f"--workdir={tmp_path / 'b'}", env=ON_DEVICE, devices=None)
  assert numbers(tmp_path / "a") == numbers(tmp_path / "b")
  assert json.loads((tmp_path / "a" / "config.json").read_text())["deterministic"] is True
  # The autotuner's choices are kept with the run, so the resuming process runs the same kernels.
  autotune = tmp_path / "a" / "xla_autotune"
  assert not autotune.exists() or any(autotune.iterdir())
  stopped = run_interrupted(args, tmp_path / "c", after_step=100, env=ON_DEVICE)
  assert 100 <= stopped < 400
  run_main(*args, f"--workdir={tmp_path / 'c'}", env=ON_DEVICE, devices=None)
  assert numbers(tmp_path / "c") == numbers(tmp_path / "a")


def test_the_non_deterministic_mode_runs_and_says_so(tmp_path):
  proc = run_main(*RUN, "--config.train_steps=50", "--config.deterministic=False", f"--workdir={tmp_path}",
                  env=ON_DEVICE, devices=None)
  assert json.loads((tmp_path / "config.json").read_text())["deterministic"] is False
  assert ("not deterministic (--config.deterministic=False)" in proc.stderr      # GPU
          or "TPU execution is deterministic" in proc.stderr)
