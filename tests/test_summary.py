"""`python -m classic.summary`: per-layer table and machine-readable totals."""

import json
import subprocess
import sys

from tests.conftest import REPO


def summary(*args):
  return subprocess.run([sys.executable, "-m", "classic.summary", *args], cwd=REPO, capture_output=True,
                        text=True, check=True, timeout=300).stdout


def test_json_totals_of_lenet5_and_resnet50():
  lenet = json.loads(summary("--config=configs/lenet.py:lenet5", "--json"))
  assert lenet["params"] == 60_000 and lenet["input"] == [32, 32, 1]
  # C1 28*28*6*25 + C3 10*10*(60 connections * 25) + C5 120*400 + F6 84*120.
  assert lenet["macs"] == 117_600 + 150_000 + 48_000 + 10_080
  resnet50 = json.loads(summary("--config=configs/resnet.py:resnet50", "--json"))
  assert resnet50["params"] == 25_557_032
  assert round(resnet50["macs"] / 1e9, 1) == 3.9  # He et al. 2015 Table 1: 3.8 x 10^9 (truncated)


def test_table_lists_every_layer_with_shapes():
  out = summary("--config=configs/lenet.py:lenet5").splitlines()
  assert out[0].startswith("lenet:lenet5")
  rows = {line.split()[0]: line.split() for line in out[2:]}
  assert rows["C3"][1] == "SparseConv" and rows["C3"][-2] == "1,516"
  assert "(10, 10, 16)" in out[[i for i, l in enumerate(out) if l.startswith("C3")][0]]
  assert rows["total"][-2:] == ["60,000", "325,680"]


def test_a_bad_or_inert_model_field_is_one_sentence():
  run = lambda *a: subprocess.run([sys.executable, "-m", "classic.summary", *a], cwd=REPO, capture_output=True,
                                  text=True, timeout=300)
  bad = run("--config=configs/resnet.py:resnet20", "--config.model.shortcut=D")
  assert bad.returncode == 1 and "model.shortcut of resnet must be one of 'A', 'B', 'C'; got 'D'" in bad.stderr
  inert = run("--config=configs/resnet.py:plain20", "--config.model.shortcut=B")
  assert inert.returncode == 1 and "has no shortcuts" in inert.stderr and "Traceback" not in inert.stderr


def test_every_named_deviation_is_in_the_docs_list():
  """docs/models.md lists every DEVIATIONS entry of the recipes and models, and a recipe or model whose
  docstring speaks of a deviation names it there."""
  import importlib
  import pkgutil

  import configs
  from classic import models, summary
  from tests.conftest import REPO
  assert summary.markdown_deviations() in (REPO / "docs" / "models.md").read_text()
  found = summary.deviations()
  assert len(found) >= 30 and any("144-crop" in text for _, text in found)
  for package in (configs, models):
    for info in pkgutil.iter_modules(package.__path__):
      module = importlib.import_module(f"{package.__name__}.{info.name}")
      if "deviation" in (module.__doc__ or "").lower():
        assert getattr(module, "DEVIATIONS", ()), f"{module.__name__} names deviations but has no DEVIATIONS"
