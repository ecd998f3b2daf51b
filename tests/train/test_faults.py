"""Faults provoked for real: numerical blow-ups, SIGKILL mid-run, bad flags. Nothing is lost."""

import os
import signal
import subprocess
import time


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
  timing = ("img_per_s", "wait_for_data_frac")
  strip = lambda ms: [{k: v for k, v in m.items() if k not in timing} for m in ms]
  assert strip(read_metrics(killed)) == strip(read_metrics(reference))


def test_unknown_config_field_and_file_fail_with_a_sentence(tmp_path):
  proc = run_main("--config=configs/lenet.py:digits", "--config.optimizer.learning_rate=0.1",
                  f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "learning_rate" in proc.stderr and "Traceback" not in proc.stderr
  proc = run_main("--config=configs/lenett.py:digits", f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "lenett.py" in proc.stderr and "Traceback" not in proc.stderr


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
    assert procs[0].returncode != 0
    assert "another task died" in err or "heartbeat timeout" in err
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
