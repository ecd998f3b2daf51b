r"""Run a sweep: every point of a sweep file in its own workdir, here, one or N at a time.

  python -m launch.sweep launch/sweeps/degradation.py --workdir=runs/degradation --dry-run
  python -m launch.sweep launch/sweeps/degradation.py --workdir=runs/degradation \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz --set=train_steps=2000 --parallel=1
  python -m launch.sweep launch/sweeps/degradation.py --workdir=/shared/runs --emit=slurm --nodes=2 > job.sh
  python -m launch.sweep launch/sweeps/degradation.py --workdir=gs-fuse/runs --emit=tpu --tpu=NAME --zone=ZONE

A sweep file defines `get_sweep()`, a list of runs; a run is a dict with `config` (a config file and
variant) and any config fields to override (dotted names). `product()` and `zip_axes()` below build
such lists. Each run is named from its variant and overrides and trains in WORKDIR/<name> through
`python -m classic.main`. A run's identity is its whole resolved config, `--set` values included:
before anything starts, every run's config is built as classic.main will build it (a misspelled
field fails here, for every run) and compared with the config.json of its workdir. A run is then
- `new`: nothing trained yet;
- `finished`: the same config, trained to its train_steps;
- `resume`: the same config, short of its train_steps (interrupted, or train_steps raised): it trains on;
- `conflict`: the workdir trained something else (another lr, another data set): the sweep refuses to
  start and names the fields; use another --workdir, or delete that run's directory to retrain it.
Bookkeeping fields (train_steps, log_every, ...: classic.train.checkpoint.RESUMABLE_FIELDS) and what
a moved recipe took from its data (config.derived_from_data) do not count as a change.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path


def product(**axes) -> list[dict]:
  """Every combination of the axes' values: product(config=[a, b], **{'model.shortcut': ['A', 'B']})."""
  keys = list(axes)
  return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def zip_axes(**axes) -> list[dict]:
  """The axes' values taken together, position by position."""
  keys = list(axes)
  lengths = {len(v) for v in axes.values()}
  if len(lengths) != 1:
    raise ValueError(f"zip_axes needs equally long axes, got lengths {sorted(lengths)}")
  return [dict(zip(keys, values)) for values in zip(*(axes[k] for k in keys))]


def load(path: str) -> list[dict]:
  spec = importlib.util.spec_from_file_location("sweep", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  runs = module.get_sweep()
  for run in runs:
    if "config" not in run:
      raise ValueError(f"{path}: every run needs a 'config' (file:variant), got {run}")
  return runs


def run_name(run: dict) -> str:
  variant = run["config"].split(":")[-1]
  parts = [variant] + [f"{k.split('.')[-1]}={v}" for k, v in run.items() if k != "config"]
  return "-".join(parts).replace("/", "_").replace(" ", "")


def command(run: dict, workdir: Path, common: list[str]) -> list[str]:
  overrides = [f"--config.{k}={v}" for k, v in run.items() if k != "config"]
  return [sys.executable, "-m", "classic.main", f"--config={run['config']}", *common, *overrides,
          f"--workdir={workdir}"]


def visible_gpus() -> int:
  """GPUs on this host: from CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`, else 0."""
  import os
  import shutil
  if os.environ.get("CUDA_VISIBLE_DEVICES", "").strip():
    return len(os.environ["CUDA_VISIBLE_DEVICES"].split(","))
  if shutil.which("nvidia-smi"):
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return sum(line.startswith("GPU ") for line in out.splitlines())
  return 0


def partition(slots: int, gpus: int, cpus: list[int]) -> list[dict]:
  """Each of `slots` concurrent runs gets its own devices: a disjoint share of the GPUs (as
  CUDA_VISIBLE_DEVICES) when there are GPUs, else a disjoint share of the CPU cores (as the
  process's CPU affinity: XLA:CPU sizes its thread pool to it). Shares are as even as possible."""
  if gpus:
    if gpus < slots:
      raise ValueError(f"--parallel={slots} needs at least {slots} GPUs, this host has {gpus}")
    ids = [str(g) for g in range(gpus)]
    return [{"env": {"CUDA_VISIBLE_DEVICES": ",".join(ids[i * gpus // slots:(i + 1) * gpus // slots])}}
            for i in range(slots)]
  if len(cpus) < slots:
    return [{} for _ in range(slots)]  # more runs than cores: let the OS share them
  return [{"cpus": set(cpus[i * len(cpus) // slots:(i + 1) * len(cpus) // slots])} for i in range(slots)]


def start(cmd: list[str], share: dict, log) -> subprocess.Popen:
  """A run in its own session: a Ctrl-C in the terminal reaches the launcher alone, which passes
  exactly one stop request on to each run (a second signal would make a run give up at once)."""
  import os
  env = dict(os.environ, **share.get("env", {}))
  cpus = share.get("cpus")
  return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


class Progress:
  """One line per running run every `every` seconds: k of n, its step, rate and ETA, its log."""

  def __init__(self, total: int, every: float):
    self.total, self.every = total, every
    self.started: dict[str, tuple[float, int, int]] = {}   # name -> (time, first step, index)
    self.last_print = 0.0

  def start(self, name: str, workdir: Path, index: int) -> None:
    self.started[name] = (time.time(), last_step(workdir), index)

  def lines(self, running: list[str], root: Path, steps: dict[str, int], force: bool = False) -> list[str]:
    now = time.time()
    if not running or not force and now - self.last_print < self.every:
      return []
    self.last_print = now
    out = []
    for name in running:
      t0, step0, index = self.started[name]
      step, total = last_step(root / name), steps[name]
      rate = (step - step0) / max(now - t0, 1e-9)
      eta = f"ETA {_duration((total - step) / rate)}" if step > step0 and rate > 0 else "ETA -"
      out.append(f"[{index} of {self.total}] {name}: step {step} of {total}, {eta}, log {root / name / 'log.txt'}")
    return out


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def last_step(workdir: Path) -> int:
  """The last step metrics.jsonl records (0 without one)."""
  try:
    lines = (workdir / "metrics.jsonl").read_text().strip().splitlines()
    return max(json.loads(line)["step"] for line in lines if line.strip())
  except (OSError, ValueError, KeyError):
    return 0


def test_result(workdir: Path) -> str:
  """The last evaluation metrics.jsonl records, as "test top-1 0.9125" or, for a run of N replicas,
  "test top-1 0.9125 ± 0.0021 over N seeds" (the papers' mean ± std); '' before any evaluation."""
  try:
    lines = (workdir / "metrics.jsonl").read_text().strip().splitlines()
  except OSError:
    return ""
  for line in reversed(lines):
    try:
      m = json.loads(line)
    except ValueError:
      continue
    if "eval/top1" in m:
      seeds = m.get("eval/top1_replicas")
      return f"test top-1 {m['eval/top1']:.4f}" + (
          f" ± {m['eval/top1_std']:.4f} over {len(seeds)} seeds" if seeds else "")
  return ""


def resolve(run: dict, sets: list[str]):
  """(config, explicit fields) of a run with the sweep's --set values, built exactly as classic.main
  builds it from the run's command line, and checked (classic.train.setup.check)."""
  from classic import command
  from classic.train import setup
  overrides = sets + [f"{k}={v}" for k, v in run.items() if k != "config"]
  config, explicit = command.load_config(run["config"], overrides)
  setup.check(config, explicit)                # prepare's first step, as classic.main runs it
  return config, explicit


def state(workdir: Path, config, explicit: set[str]) -> tuple[str, str]:
  """(new | finished | resume | conflict, detail) of a run whose requested config is `config`."""
  from classic.train import checkpoint, epochs
  try:
    old = json.loads((workdir / "config.json").read_text())
  except FileNotFoundError:
    return "new", ""
  except (OSError, ValueError) as e:
    return "conflict", f"unreadable config.json ({e})"
  new = json.loads(config.to_json_best_effort())
  derived = set(old.get("derived_from_data", ())) - explicit
  # A step count set in epochs is resolved for the data the run read (classic.train.epochs): the
  # workdir's value is the one that counts, as long as the epochs agree.
  in_epochs = {field for field, twin in epochs.EPOCH_FIELDS if _at(new, twin) and _at(old, twin) == _at(new, twin)}
  diffs = checkpoint.differing_fields(old, new, ignore=derived | in_epochs | {"derived_from_data"})
  if diffs:
    return "conflict", "; ".join(f"{d}: {_at(old, d)!r} there, {_at(new, d)!r} now" for d in diffs)
  step = last_step(workdir)
  train_steps = old.get("train_steps", config.train_steps) if "train_steps" in in_epochs else config.train_steps
  if step >= train_steps:
    result = test_result(workdir)
    return "finished", f"step {step}" + (f"; {result}" if result else "")
  return "resume", f"at step {step} of {train_steps}"


def _at(tree: dict, dotted: str):
  for part in dotted.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def environment_lines(repo: Path | None = None) -> list[str]:
  """Shell lines that put a batch job where this command runs: the project's directory and the
  Python environment (a virtualenv or a conda environment) this launcher runs in."""
  import os
  import shlex
  repo = repo or Path(__file__).resolve().parent.parent
  lines = [f"cd {shlex.quote(str(repo))}"]
  if sys.prefix != sys.base_prefix:
    lines.append(f"source {shlex.quote(os.path.join(sys.prefix, 'bin', 'activate'))}")
  elif os.environ.get("CONDA_PREFIX"):
    lines.append(f'eval "$(conda shell.bash hook)" && conda activate {shlex.quote(os.environ["CONDA_PREFIX"])}')
  return lines


def emit_slurm(jobs: list[tuple[str, list[str]]], root: Path, name: str, nodes: int, gpus_per_node: int,
               setup: list[str], python: str = "python") -> str:
  """A SLURM array job: task i trains run i on `nodes` hosts, one process per host (srun), each
  process joining the others through jax.distributed (classic.main detects SLURM by itself).
  `setup`: shell lines run first (environment_lines: the project's directory, the environment)."""
  lines = ["#!/bin/bash", f"#SBATCH --job-name=classic-{name}", f"#SBATCH --array=0-{len(jobs) - 1}",
           f"#SBATCH --nodes={nodes}", "#SBATCH --ntasks-per-node=1"]
  if gpus_per_node:
    lines.append(f"#SBATCH --gpus-per-node={gpus_per_node}")
  lines += [f"#SBATCH --output={root}/slurm-%A_%a.out", *setup, "set -euo pipefail", "RUNS=("]
  lines += [f"  '{' '.join(cmd[3:])}'  # {run}" for run, cmd in jobs]
  lines += [")", f"srun {python} -m classic.main ${{RUNS[$SLURM_ARRAY_TASK_ID]}}", ""]
  return "\n".join(lines)


def emit_tpu(jobs: list[tuple[str, list[str]]], tpu: str, zone: str, repo_dir: str,
             python: str = "python3") -> str:
  """One command per run for a multi-host Cloud TPU VM: every worker starts its process, JAX finds
  the others itself. The workdir must be on storage all workers share."""
  lines = [f"# {run}\ngcloud compute tpus tpu-vm ssh {tpu} --zone={zone} --worker=all "
           f"--command='cd {repo_dir} && {python} -m classic.main {' '.join(cmd[3:])}'" for run, cmd in jobs]
  return "\n".join(lines) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("sweep", help="a sweep file, e.g. launch/sweeps/degradation.py")
  parser.add_argument("--workdir", required=True, help="root: each run trains in WORKDIR/<run name>")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="override a config field in every run (repeatable)")
  parser.add_argument("--only", default="", metavar="REGEX", help="only the runs whose name matches")
  parser.add_argument("--parallel", type=int, default=1, help="runs at a time, each on its own share "
                      "of the GPUs (CUDA_VISIBLE_DEVICES) or, without GPUs, of the CPU cores")
  parser.add_argument("--dry-run", action="store_true", help="list the runs and their commands")
  parser.add_argument("--progress_every", type=float, default=60, help="seconds between progress lines "
                      "(each running run's step, ETA and log)")
  parser.add_argument("--emit", choices=["slurm", "tpu"], help="print a SLURM array script or Cloud TPU "
                      "VM commands for the sweep instead of running it here")
  parser.add_argument("--nodes", type=int, default=1, help="--emit=slurm: hosts per run")
  parser.add_argument("--gpus_per_node", type=int, default=8, help="--emit=slurm: GPUs per host (0: none)")
  parser.add_argument("--tpu", default="my-tpu", help="--emit=tpu: the TPU VM's name")
  parser.add_argument("--zone", default="us-central2-b", help="--emit=tpu: its zone")
  parser.add_argument("--repo_dir", default="~/classic", help="--emit=tpu: this repository on the workers")
  args = parser.parse_args(argv)
  runs = load(args.sweep)
  root = Path(args.workdir)
  common = [f"--config.{s}" for s in args.set]
  names = [run_name(r) for r in runs]
  if len(set(names)) != len(names):
    raise SystemExit(f"error: two runs of {args.sweep} have the same name: {names}")
  selected = [(name, r) for name, r in zip(names, runs) if re.search(args.only, name)]
  if not selected:
    raise SystemExit(f"error: --only={args.only!r} matches no run of {args.sweep}; its runs: {', '.join(names)}")
  jobs = [(name, command(r, root / name, common)) for name, r in selected]
  if args.emit == "slurm":
    print(emit_slurm(jobs, root, Path(args.sweep).stem, args.nodes, args.gpus_per_node, environment_lines()), end="")
    return 0
  if args.emit == "tpu":
    print(emit_tpu(jobs, args.tpu, args.zone, args.repo_dir), end="")
    return 0
  states, targets, problems = {}, {}, []
  for name, r in selected:  # every run's config, built and compared before anything starts
    try:
      config, explicit = resolve(r, list(args.set))
    except ValueError as e:
      problems.append(f"{name}: {e}")
      continue
    states[name] = state(root / name, config, explicit)
    targets[name] = config.train_steps
  if problems:
    raise SystemExit("error: the sweep cannot start:\n  " + "\n  ".join(problems))
  if args.dry_run:
    for name, cmd in jobs:
      kind, detail = states[name]
      print(f"{name}\t{kind}{f' ({detail})' if detail else ''}\t{' '.join(cmd[1:])}")
    return 0
  conflicts = [f"{name}: {detail}" for name, (kind, detail) in states.items() if kind == "conflict"]
  if conflicts:
    raise SystemExit(f"error: {len(conflicts)} runs under {root} trained another config than the one asked for "
                     "now; nothing was started:\n  " + "\n  ".join(conflicts) + "\nUse another --workdir, or "
                     "delete those runs' directories to train them anew.")
  pending = [(n, c) for n, c in jobs if states[n][0] != "finished"]
  counts = {k: sum(v[0] == k for v in states.values()) for k in ("finished", "resume", "new")}
  print(f"{len(jobs)} runs: {counts['finished']} finished, {counts['resume']} to resume, {counts['new']} new",
        flush=True)
  import shlex
  return run_pending(pending, root, targets, args.parallel, args.progress_every,
                     rerun=shlex.join(["python", "-m", "launch.sweep", *(sys.argv[1:] if argv is None else argv)]))


def run_pending(pending: list[tuple[str, list[str]]], root: Path, train_steps: dict[str, int], parallel: int,
                progress_every: float, rerun: str) -> int:
  """Runs the pending runs, `parallel` at a time, until all finish, one fails, or a stop request.

  A stop request (SIGINT/SIGTERM to the launcher, or a run that was stopped from outside: it exits 0
  short of its train_steps) stops the sweep: every running run is asked once to checkpoint and stop,
  none is started, and each stopped run is named with its step. Exit 130 then; 1 if a run failed.
  """
  import os
  import signal
  if not pending:
    return 0
  shares = partition(parallel, visible_gpus(), sorted(os.sched_getaffinity(0)))
  free = list(range(parallel))
  running: list[tuple[str, subprocess.Popen, int]] = []
  failures, stopped, signalled = [], [], []
  total = len(pending)
  progress = Progress(total, progress_every)

  def request_stop(signum, frame):
    del frame
    first = not signalled
    signalled.append(signal.Signals(signum).name)
    print(f"{signalled[-1]} received: asking {len(running)} running runs to checkpoint and stop"
          + ("" if first else " at once (a second signal)") + ".", flush=True)
    for _, proc, _ in running:
      if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)

  previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
  root.mkdir(parents=True, exist_ok=True)
  try:
    while pending and not signalled and not stopped or running:
      while pending and free and not signalled and not stopped:
        name, cmd = pending.pop(0)
        slot = free.pop(0)
        (root / name).mkdir(parents=True, exist_ok=True)
        log = open(root / name / "log.txt", "a")
        progress.start(name, root / name, total - len(pending))
        running.append((name, start(cmd, shares[slot], log), slot))
        print(f"started {name} [{total - len(pending)} of {total}] on {shares[slot] or 'shared devices'}; "
              f"log {root / name / 'log.txt'}", flush=True)
      for name, proc, slot in list(running):
        if proc.poll() is None:
          continue
        running.remove((name, proc, slot))
        free.append(slot)
        step = last_step(root / name)
        if proc.returncode != 0:
          failures.append(name)
          print(f"FAILED {name} (exit {proc.returncode}; see {root / name / 'log.txt'})", flush=True)
        elif step < train_steps[name]:
          stopped.append((name, step))
          print(f"stopped {name} at step {step} of {train_steps[name]}", flush=True)
          if not signalled:  # stopped from outside (a preempted job): the sweep stops with it
            for _, other, _ in running:
              other.send_signal(signal.SIGTERM)
        else:
          result = test_result(root / name)
          print(f"finished {name} (step {step}{f'; {result}' if result else ''})", flush=True)
      for line in progress.lines([n for n, _, _ in running], root, train_steps):
        print(line, flush=True)
      time.sleep(0.2)
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)
  if failures:
    print(f"{len(failures)} runs failed (see their log.txt): {', '.join(failures)}", file=sys.stderr)
  if stopped or signalled:
    left = len(pending)
    print(f"The sweep stopped: {', '.join(f'{n} at step {s} of {train_steps[n]}' for n, s in stopped) or 'no run was running'}"
          f"{f'; {left} runs not started' if left else ''}. Every stopped run wrote a checkpoint: rerun the same "
          f"command to resume:\n  {rerun}", file=sys.stderr, flush=True)
    return 130
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
