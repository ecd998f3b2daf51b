"""Faults provoked for real: numerical blow-ups, SIGKILL mid-run, bad flags. Nothing is lost."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, main_command, read_metrics, run_main

DIGITS = ["--config=configs/lenet.py:digits", "--config.model.output=linear", "--config.train_steps=40",
          "--config.log_every=10", "--config.checkpoint_every=10", "--config.eval_every=40",
          "--config.optimizer.schedule=steps", "--config.optimizer.boundaries=(25,)"]
# From step 25 on the learning rate is 5e33: the update of step 26 overflows float32.
BLOW_UP = ["--config.optimizer.scales=(1e36,)"]


def test_non_finite_update_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
  proc = run_main(*DIGITS, *BLOW_UP, f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 1
  assert "Non-finite loss or gradient at step 26" in proc.stderr
  assert "the last checkpoint, step 20, is intact" in proc.stderr
  assert sorted(int(d.name) for d in (tmp_path / "checkpoints").iterdir() if d.name.isdigit()) == [10, 20]


def test_skip_mode_skips_and_counts_non_finite_updates(tmp_path):
  run_main(*DIGITS, *BLOW_UP, "--config.nonfinite=skip", f"--workdir={tmp_path}")
  final = read_metrics(tmp_path)[-1]
  assert final["step"] == 40 and final["train/skipped_updates"] == 15
  assert final["eval/top1"] > 0.5  # the weights of step 25 were kept, not destroyed


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_from_the_last_complete_checkpoint(tmp_path):
  reference = tmp_path / "reference"
  run_main(*DIGITS, f"--workdir={reference}")
  killed = tmp_path / "killed"
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  for delay in (0.3, 0.05):  # after the first checkpoint starts; then again right after restart
    proc = subprocess.Popen(main_command(*DIGITS, f"--workdir={killed}"), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "checkpoints").exists():
      time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  run_main(*DIGITS, f"--workdir={killed}")
  timing = ("img_per_s", "wait_for_data_frac", "eval_seconds")
  strip = lambda ms: [{k: v for k, v in m.items() if k not in timing} for m in ms]
  assert strip(read_metrics(killed)) == strip(read_metrics(reference))


def test_unknown_config_field_and_file_fail_with_a_sentence(tmp_path):
  proc = run_main("--config=configs/lenet.py:digits", "--config.optimizer.learning_rate=0.1",
                  f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "learning_rate" in proc.stderr and "Traceback" not in proc.stderr
  proc = run_main("--config=configs/lenett.py:digits", f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "lenett.py" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_dead_peer_stops_the_other_process_within_the_heartbeat_timeout(tmp_path):
  from tests.conftest import free_port
  args = ["--config=configs/lenet.py:digits", "--config.train_steps=100000", "--config.log_every=20",
          "--config.checkpoint_every=100000", f"--workdir={tmp_path}", "--heartbeat_timeout=10"]
  port = free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  procs = [subprocess.Popen(main_command(*args, f"--coordinator=127.0.0.1:{port}", "--num_processes=2",
                                         f"--process_id={i}"),
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  try:
    deadline = time.time() + 180
    while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists():
      time.sleep(0.2)
    assert (tmp_path / "metrics.jsonl").exists(), "the 2-process run never got going"
    procs[1].kill()
    killed_at = time.time()
    _, err = procs[0].communicate(timeout=90)
    assert time.time() - killed_at < 60
    # one sentence and exit 1, not JAX's traceback and abort (exit 134, "Fatal Python error: Aborted")
    assert procs[0].returncode == 1, err[-3000:]
    assert "error: another process of this multi-host run stopped" in err, err[-3000:]
    assert "Traceback" not in err and "Fatal Python error" not in err
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()


def test_an_unusable_workdir_is_one_sentence(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  proc = run_main("--config=configs/lenet.py:digits", f"--workdir={blocker}/run", check=False)
  assert proc.returncode == 1
  assert "error: cannot read or write" in proc.stderr and "Traceback" not in proc.stderr


def _truncate_state(step_dir):
  for f in (step_dir / "state").rglob("*"):
    if f.is_file() and f.stat().st_size > 64:
      with open(f, "r+b") as h:
        h.truncate(f.stat().st_size // 2)


@pytest.mark.slow
def test_a_truncated_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(tmp_path):
  reference = tmp_path / "reference"
  run_main(*DIGITS, "--config.train_steps=60", f"--workdir={reference}")
  damaged = tmp_path / "damaged"
  run_main(*DIGITS, f"--workdir={damaged}")  # checkpoints 20, 30, 40 (keep 3)
  _truncate_state(damaged / "checkpoints" / "40")
  proc = run_main(*DIGITS, "--config.train_steps=60", f"--workdir={damaged}")
  assert "Checkpoint step 40" in proc.stderr and "unreadable" in proc.stderr
  assert (damaged / "checkpoints" / "40.unreadable").is_dir()  # kept for inspection, not deleted
  timing = ("img_per_s", "wait_for_data_frac", "eval_seconds")
  strip = lambda ms: [{k: v for k, v in m.items() if k not in timing} for m in ms]
  assert strip(read_metrics(damaged)) == strip(read_metrics(reference))


@pytest.mark.slow
def test_no_readable_checkpoint_or_another_models_checkpoint_is_a_sentence(tmp_path):
  run_main(*DIGITS, "--config.train_steps=20", f"--workdir={tmp_path / 'other'}")
  # The same workdir resumed with another output layer: named, and the checkpoints stay where they are.
  proc = run_main(*DIGITS, "--config.train_steps=20", "--config.model.output=rbf", "--override_config",
                  f"--workdir={tmp_path / 'other'}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "was written by a different model" in proc.stderr and "init_from" in proc.stderr
  assert sorted(d.name for d in (tmp_path / "other" / "checkpoints").iterdir()) == ["10", "20"]
  for step in ("10", "20"):
    _truncate_state(tmp_path / "other" / "checkpoints" / step)
  proc = run_main(*DIGITS, "--config.train_steps=20", f"--workdir={tmp_path / 'other'}", check=False)
  assert proc.returncode == 1 and "No readable checkpoint in" in proc.stderr.splitlines()[-3]


@pytest.mark.slow
def test_a_full_disk_is_a_sentence_and_the_complete_checkpoints_resume(tmp_path):
  """The workdir on a 1.2 MB tmpfs: LeNet's checkpoints (~0.5 MB) fill it at the third save."""
  disk = tmp_path / "disk"
  disk.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(disk)],
                    capture_output=True).returncode != 0:
    pytest.skip("mounting a small tmpfs needs root")
  try:
    env = {"CLASSIC_JAX_CACHE": str(tmp_path / "jax_cache")}
    proc = run_main(*DIGITS, f"--workdir={disk / 'run'}", env=env, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert last.startswith("error: the disk holding") and "No space left on device" in last
    assert "Complete checkpoints (steps 10, 20) are intact" in last
    shutil.copytree(disk / "run", tmp_path / "moved")  # the user makes room: here, another disk
  finally:
    subprocess.run(["umount", str(disk)], check=False)
  run_main(*DIGITS, f"--workdir={tmp_path / 'moved'}")
  reference = tmp_path / "reference"
  run_main(*DIGITS, f"--workdir={reference}")
  timing = ("img_per_s", "wait_for_data_frac", "eval_seconds")
  strip = lambda ms: [{k: v for k, v in m.items() if k not in timing} for m in ms]
  assert strip(read_metrics(tmp_path / "moved")) == strip(read_metrics(reference))


@pytest.mark.slow
def test_a_signal_to_one_host_stops_every_host_at_the_same_checkpoint(tmp_path):
  """A preempted VM gets SIGTERM, its peers do not: all processes agree on the step, checkpoint it
  together and exit 0; rerunning them resumes from it."""
  from tests.conftest import free_port
  args = ["--config=configs/lenet.py:digits", "--config.log_every=10", "--config.checkpoint_every=100000",
          "--config.eval_every=100000", f"--workdir={tmp_path}"]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}

  def start(steps):
    port = free_port()
    return [subprocess.Popen(main_command(*args, f"--config.train_steps={steps}", f"--coordinator=127.0.0.1:{port}",
                                          "--num_processes=2", f"--process_id={i}"),
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for i in range(2)]

  procs = start(100000)
  try:
    deadline = time.time() + 180
    while time.time() < deadline and not (tmp_path / "metrics.jsonl").exists():
      time.sleep(0.2)
    assert (tmp_path / "metrics.jsonl").exists(), "the 2-process run never got going"
    procs[1].send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=120)[1] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
  assert "Process 1 was signalled: stopping at step" in errs[0]
  steps = [int(d.name) for d in (tmp_path / "checkpoints").iterdir() if d.name.isdigit()]
  assert len(steps) == 1 and steps[0] % 10 == 0 and f"Stopped at step {steps[0]}" in errs[1]
  procs = start(steps[0] + 20)
  for p in procs:
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
  assert read_metrics(tmp_path)[-1]["step"] == steps[0] + 20


def test_the_design_cards_command_runs_without_a_workdir(tmp_path):
  """`python -m classic.main --config=FILE:VARIANT` alone: a default workdir, printed at the start."""
  env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  proc = subprocess.run(main_command(f"--config={REPO}/configs/lenet.py:digits", "--config.train_steps=2",
                                     "--config.eval_every=2", "--config.checkpoint_every=2"),
                        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  workdir = tmp_path / "runs" / "lenet" / "digits"
  assert proc.stdout.splitlines()[0] == f"workdir: {workdir}"
  assert (workdir / "config.json").exists() and (workdir / "metrics.jsonl").exists()


def test_a_data_error_is_said_once(tmp_path):
  proc = run_main("--config=configs/lenet.py:digits", "--config.dataset=/nonexistent/x.tar.gz",
                  f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  said = [line for line in proc.stderr.splitlines() if "/nonexistent/x.tar.gz" in line]
  assert len(said) == 1 and said[0].startswith("error: "), proc.stderr[-2000:]


def test_a_misspelled_data_set_is_one_sentence_with_the_nearest_names_and_leaves_no_workdir(tmp_path):
  workdir = tmp_path / "never-started"
  proc = run_main("--config=configs/lenet.py:digits", "--config.dataset=cifar", f"--workdir={workdir}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  said = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(said) == 1 and "Unknown dataset 'cifar'" in said[0] and "Did you mean cifar10, cifar100" in said[0]
  assert len(proc.stderr.splitlines()) < 10, proc.stderr[-3000:]        # not TFDS's list of 400+ data sets
  assert "Unable to initialize backend" not in proc.stderr             # JAX's probing for a TPU: not the user's
  assert not workdir.exists()                                          # a run that never started leaves nothing


def test_config_given_twice_is_refused():
  proc = run_main("--config=configs/lenet.py:digits", "--config=configs/resnet.py:resnet20", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert ("error: --config is given 2 times (configs/lenet.py:digits, configs/resnet.py:resnet20): give one "
          "config file and variant") in proc.stderr


def test_determinism_flags_go_into_xla_flags_before_the_backend_starts(monkeypatch, tmp_path):
  from classic import platform
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
  flags = platform.set_up_determinism(True, str(tmp_path))
  assert flags.split() == ["--xla_force_host_platform_device_count=2", "--xla_gpu_deterministic_ops=true",
                           f"--xla_gpu_per_fusion_autotune_cache_dir={tmp_path / 'xla_autotune'}"]
  assert platform.set_up_determinism(True, str(tmp_path)) == flags           # added once
  monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=false")      # the user's own choice stands
  assert platform.set_up_determinism(True, None) == "--xla_gpu_deterministic_ops=false"
  monkeypatch.setenv("XLA_FLAGS", "")
  assert platform.set_up_determinism(False, str(tmp_path)) == ""
