"""`python -m classic.bench`: every figure is there and plausible (no timing thresholds)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_bench_json_reports_speed_compile_flops_memory_and_input_rate():
  out = subprocess.run([sys.executable, "-m", "classic.bench", "--config=configs/lenet.py:digits", "--batch=32",
                        "--steps=3", "--warmup=1", "--data_batches=3", "--json"],
                       cwd=REPO, capture_output=True, text=True, check=True, timeout=300).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert r["variant"] == "lenet:digits" and r["batch"] == 32 and r["input"] == [32, 32, 1]
  assert r["macs_per_image"] == 325_680
  assert r["img_per_s"] == pytest.approx(r["batch"] / r["step_s_median"]) and r["img_per_s"] > 0
  assert r["train_flops_per_s"] == pytest.approx(6 * r["macs_per_image"] * r["img_per_s"])
  assert r["fraction_of_matmul_peak"] == pytest.approx(r["train_flops_per_s"] / r["matmul_peak_flops_per_s"])
  assert r["compile_s"] > 0 and r["peak_host_memory_mib"] > 100
  assert r["input_img_per_s"] > 0 and r["dataset"] == "digits"


def test_bench_names_a_dataset_it_cannot_read():
  out = subprocess.run([sys.executable, "-m", "classic.bench", "--config=configs/lenet.py:digits", "--batch=8",
                        "--steps=0", "--data_batches=2", "--config.dataset=/nonexistent/x.tar.gz",
                        "--json"], cwd=REPO, capture_output=True, text=True, check=True, timeout=300).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert r["input_img_per_s"] is None and "does not exist" in r["input_unavailable"]


def test_bench_compile_only_and_cpu_flags():
  """--steps=0 compiles and stops; on a CPU-only install the command wrapper turns YNNPACK off
  (classic.platform; docs/performance.md)."""
  code = ("import os, sys; sys.argv = ['bench', '--config=configs/lenet.py:digits', '--batch=8', "
          "'--steps=0', '--data_batches=0', '--json']; from classic import bench, command; bench.define_flags(); "
          "import atexit; atexit.register(lambda: print('XLA_FLAGS=' + os.environ.get('XLA_FLAGS', ''))); "
          "command.run(bench.main)")
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                       timeout=300, env={k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"})
  lines = out.stdout.strip().splitlines()
  r = json.loads(lines[-2])
  assert r["compile_s"] > 0 and r["macs_per_image"] == 325_680 and "img_per_s" not in r
  assert "matmul_peak_flops_per_s" not in r                         # nothing timed: no peak to compare with
  assert r["xla_temp_mib"] > 0 and 0.4 < r["xla_argument_mib"] < 2  # 60 k params + momentum + batch
  # ... and, as the trainer, asks XLA for deterministic GPU kernels (ignored on the CPU).
  assert lines[-1] == "XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= --xla_gpu_deterministic_ops=true"
  assert r["deterministic"] is True


def test_pytorch_side_of_the_comparison():
  pytest.importorskip("torch")
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.pytorch", "--model=resnet20", "--batch=8", "--steps=2",
                        "--warmup=1", "--json"], cwd=REPO, capture_output=True, text=True, check=True,
                       timeout=300).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert r["framework"] == "pytorch" and r["model"] == "resnet20" and r["batch"] == 8
  assert r["img_per_s"] == pytest.approx(8 / r["step_s_median"])
  # the same net: ResNet-20's 0.27 M parameters (He et al. 2015 Table 6)
  from launch.benchmarks.pytorch import _models
  models, _ = _models()
  assert sum(p.numel() for p in models["resnet20"][0]().parameters()) == 269_722  # = classic.summary


@pytest.mark.slow
def test_bench_profile_lists_the_costliest_xla_ops():
  out = subprocess.run([sys.executable, "-m", "classic.bench", "--config=configs/lenet.py:digits", "--batch=16",
                        "--steps=1", "--warmup=1", "--data_batches=0", "--profile=2"], cwd=REPO,
                       capture_output=True, text=True, check=True, timeout=300).stdout
  table = out[out.index("XLA op (per step)"):].splitlines()[1:]
  assert len(table) >= 3
  ms = [float(line.split()[1]) for line in table]
  assert ms == sorted(ms, reverse=True) and ms[0] > 0
  assert any("convolution" in line or "fusion" in line for line in table)


@pytest.mark.parametrize("variant, convolutions, fc_macs", [("resnet20", 19, 64 * 10),
                                                             pytest.param("resnet32", 31, 64 * 10,
                                                                          marks=pytest.mark.slow)])
def test_convolution_benchmark_reads_the_models_convolutions(variant, convolutions, fc_macs):
  """bench_convs times the convolutions the train step runs: all of them (He et al. 2015 §4.2: 6n+1 for
  ResNet-(6n+2), plus the classifier), and nothing else."""
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.convs", f"--config=configs/resnet.py:{variant}",
                        "--batch=2", "--reps=1", "--json"], cwd=REPO,
                       capture_output=True, text=True, check=True, timeout=300).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert r["batch"] == 2 and r["convolutions"] == convolutions
  from classic import models
  from classic.models import counts
  from configs import common
  config = common.load(f"resnet:{variant}")
  macs = counts.totals(models.build(config.model), (1, 32, 32, 3))["macs"]
  assert r["conv_macs_per_image"] == macs - fc_macs
  for name in ("total_ms", "forward_ms", "input_grad_ms", "weight_grad_ms", "ceiling_img_per_s"):
    assert r["jax"][name] > 0
  if r["torch"] is not None:
    assert r["torch"]["total_ms"] > 0 and r["jax_over_torch_time"] > 0


@pytest.mark.slow
def test_layer_benchmark_times_each_cpu_form_against_its_textbook_form():
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.layers", "--reps=1", "--json"], cwd=REPO,
                       capture_output=True, text=True, check=True, timeout=600).stdout
  rows = json.loads(out.strip().splitlines()[-1])
  from launch.benchmarks import layers as bench_layers
  assert len(rows) == len(bench_layers.BN_SHAPES) + len(bench_layers.POOL_SHAPES) + len(bench_layers.POINTWISE)
  assert {r["what"].split()[0] for r in rows} == {"BN", "max", "1x1"}
  assert all(r["textbook_ms"] > 0 and r["classic_ms"] > 0 for r in rows)
