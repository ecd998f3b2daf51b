"""`python -m launch.benchmarks.input_pipeline`: classic's rate on the ImageNet-like JPEGs; tf.data only where
installed. `python -m launch.benchmarks.jpeg_decoders`: the decoders' milliseconds per image."""

import json
import subprocess
import sys

from classic.data import jpeg_regions
from tests.conftest import REPO


def test_bench_input_reports_classic_and_says_when_tensorflow_is_absent(tmp_path):
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.input_pipeline", "--workers=1", "--recipes=inception",
                        "--rounds=1", "--batches=1", "--images=40", f"--folder={tmp_path / 'jpegs'}", "--whole",
                        "--list_files=3000", "--tf_python=/nonexistent/python", "--json"],
                       cwd=REPO, capture_output=True, text=True, check=True, timeout=600).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert set(r["img_per_s"]) == {"inception/classic, 1 workers", "inception/classic, 1 workers, whole images"}
  assert all(rate > 0 for rate in r["img_per_s"].values())
  assert r["tensorflow"] is None and r["batch"] == 128 and r["images"] == 40
  assert r["jpeg_regions"] == jpeg_regions.available()
  assert r["listing"]["files"] == 3000 and r["listing"]["classes"] == 1000


def test_bench_jpeg_decoders_prints_each_way_to_the_crop(tmp_path):
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.jpeg_decoders", "--images=20",
                        f"--folder={tmp_path / 'jpegs'}"], cwd=REPO, capture_output=True, text=True, check=True,
                       timeout=600).stdout
  lines = {line[:56].strip(): float(line[56:].split()[0]) for line in out.splitlines()[1:]}
  assert "whole image, PIL" in lines and "Inception crop 224, whole image (jpeg_regions=False)" in lines
  if jpeg_regions.available():
    assert "Inception crop's window, nvImageCodec" in lines
  assert all(ms > 0 for ms in lines.values())
