"""`python -m launch.accelerator_check` end to end on CPU, in its reduced form: every section and field."""

import json
import subprocess
import sys

import pytest

from tests.conftest import CIFAR_ARCHIVE, REPO, requires_cifar

STEP_FIELDS = {"variant", "half_precision", "batch", "batch_per_device", "input", "img_per_s", "step_s_median",
               "compile_s", "macs_per_image", "train_flops_per_s", "mfu", "xla_temp_mib", "device_peak_memory_bytes"}


@pytest.mark.slow
@requires_cifar
def test_reduced_check_writes_every_section(tmp_path):
  out = tmp_path / "report.json"
  proc = subprocess.run([sys.executable, "-m", "launch.accelerator_check", "--size=reduced", "--models=resnet20",
                         f"--cifar={CIFAR_ARCHIVE}", f"--out={out}"], cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  r = json.loads(out.read_text())
  assert r["failed"] == [] and r["size"] == "reduced"
  assert r["devices"]["platform"] == "cpu" and r["devices"]["count"] >= 1
  assert {"python", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"} <= set(r["versions"])
  assert r["matmul_peak"]["bf16_flops_per_s"] > 0 and r["matmul_peak"]["fp32_flops_per_s"] > 0
  step = r["train_step"]["resnet20"]
  assert STEP_FIELDS <= set(step)
  assert step["macs_per_image"] == 40_551_040 and step["input"] == [32, 32, 3]
  assert step["img_per_s"] == pytest.approx(step["batch"] / step["step_s_median"])
  assert step["mfu"] == pytest.approx(step["train_flops_per_s"] / r["matmul_peak"]["bf16_flops_per_s"])
  ip = r["input_pipeline"]
  assert ip["img_per_s"] > 0 and ip["batch_shape"] == [ip["batch"], 224, 224, 3] and ip["workers"] >= 1
  assert "augment=imagenet" in ip["recipe"] and "pca_lighting=0.1" in ip["recipe"]
  assert ip["step_img_per_s"] is None and ip["input_over_step"] is None   # resnet50 was not timed
  run = r["real_run"]
  assert run["eval_count"] == 10000 and run["steps"] == 30 and run["loss_fell"]
  assert run["train_loss"][-1] < run["train_loss"][0] - 0.3                # seen: 3.48 -> 2.32
  cs = r["cifar_speed"]
  assert set(cs["runs"]) == {"k1_r1", "k1_r2", "k4_r1", "k4_r2"} and cs["batch"] == step["batch"] == 4
  assert all(v["img_per_s"] > 0 and v["over_host_fed_step"] > 0 for v in cs["runs"].values())
  assert cs["run_64k_minutes"] == pytest.approx(64_000 * 4 / max(cs["runs"][k]["img_per_s"] for k in ("k1_r1", "k4_r1")) / 60)
  det = r["determinism"]
  assert det["runs_equal"] and det["resume_equal"] and det["steps"] == 6
  assert det["final"]["eval/count"] == 360 and det["cost"] is None and "deterministic" in det["cost_note"]
  assert "runs equal True, resume equal True" in proc.stdout
  assert "resnet20" in proc.stdout and "all sections ran" in proc.stdout


def test_a_missing_archive_is_a_finding_not_a_crash(tmp_path):
  from launch import accelerator_check
  r = accelerator_check.real_run(accelerator_check.SIZES["reduced"], str(tmp_path / "none.tar.gz"))
  assert "error" in r and "--cifar=PATH" in r["error"]


def test_unknown_model_keys_are_refused_before_anything_runs():
  proc = subprocess.run([sys.executable, "-m", "launch.accelerator_check", "--models=resnet51"], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "unknown resnet51; known: resnet50_bf16, resnet20, inception_v3_bf16" in proc.stderr
