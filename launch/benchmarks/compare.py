r"""classic vs PyTorch on this machine, side by side in one run: the table of docs/performance.md.

  python -m launch.benchmarks.compare [--models=resnet20,resnet56,resnet50] [--steps=10] [--rounds=3]

For each model, `python -m classic.bench` and `python -m launch.benchmarks.pytorch` run alternately,
`--rounds` times each, as separate processes, so both see the same machine load; each figure is the
median over rounds of the per-run median step time. Prints a Markdown table with the ratio
classic / PyTorch. Needs torch (the CPU wheel: `pip install torch --index-url
https://download.pytorch.org/whl/cpu`); without it the PyTorch column says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CONFIGS = {"resnet20": "configs/resnet.py:resnet20", "resnet56": "configs/resnet.py:resnet56",
           "resnet110": "configs/resnet.py:resnet110", "resnet50": "configs/resnet.py:resnet50"}
BATCH = {"resnet50": 32}


def _json(cmd: list[str]) -> dict:
  proc = subprocess.run(cmd, capture_output=True, text=True)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(model: str, steps: int, rounds: int) -> dict:
  batch = BATCH.get(model, 128)
  ours, theirs, compile_s = [], [], []
  try:
    import torch  # noqa: F401
    have_torch = True
  except ImportError:
    have_torch = False
  for _ in range(rounds):
    r = _json([sys.executable, "-m", "classic.bench", f"--config={CONFIGS[model]}", f"--batch={batch}",
               f"--steps={steps}", "--data_batches=0", "--json"])
    ours.append(r["img_per_s"])
    compile_s.append(r["compile_s"])
    if have_torch:
      theirs.append(_json([sys.executable, "-m", "launch.benchmarks.pytorch", f"--model={model}",
                           f"--batch={batch}", f"--steps={steps}", "--json"])["img_per_s"])
  row = {"model": model, "batch": batch, "classic_img_per_s": statistics.median(ours),
         "classic_compile_s": statistics.median(compile_s),
         "fraction_of_matmul_peak": r["fraction_of_matmul_peak"]}
  if theirs:
    row["pytorch_img_per_s"] = statistics.median(theirs)
    row["ratio"] = row["classic_img_per_s"] / row["pytorch_img_per_s"]
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="resnet20,resnet56,resnet50")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  models = args.models.split(",")
  unknown = [m for m in models if m not in CONFIGS]
  if unknown:
    raise SystemExit(f"unknown models {unknown}; known: {', '.join(CONFIGS)}")
  print("| model | batch | classic img/s | PyTorch img/s | classic / PyTorch | classic compile s | "
        "classic fraction of matmul peak |")
  print("|---|---|---|---|---|---|---|")
  for m in models:
    r = compare(m, args.steps, args.rounds)
    torch_cell = f"{r['pytorch_img_per_s']:.1f}" if "pytorch_img_per_s" in r else "torch not installed"
    ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
    print(f"| {m} | {r['batch']} | {r['classic_img_per_s']:.1f} | {torch_cell} | {ratio} | "
          f"{r['classic_compile_s']:.1f} | {r['fraction_of_matmul_peak']:.3f} |", flush=True)


if __name__ == "__main__":
  main()
