"""`python -m launch.benchmarks.input_pipeline`: classic's rate on the ImageNet-like JPEGs; tf.data only where installed."""

import json
import subprocess
import sys

from tests.conftest import REPO


def test_bench_input_reports_classic_and_says_when_tensorflow_is_absent(tmp_path):
  out = subprocess.run([sys.executable, "-m", "launch.benchmarks.input_pipeline", "--workers=0,1", "--recipes=inception",
                        "--rounds=1", "--batches=1", "--images=40", f"--folder={tmp_path / 'jpegs'}",
                        "--list_files=3000", "--tf_python=/nonexistent/python", "--json"],
                       cwd=REPO, capture_output=True, text=True, check=True, timeout=600).stdout
  r = json.loads(out.strip().splitlines()[-1])
  assert set(r["img_per_s"]) == {"inception/classic, 0 workers", "inception/classic, 1 workers"}
  assert all(rate > 0 for rate in r["img_per_s"].values())
  assert r["tensorflow"] is None and r["batch"] == 128 and r["images"] == 40
  assert r["listing"]["files"] == 3000 and r["listing"]["classes"] == 1000
