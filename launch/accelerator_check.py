r"""Checks a GPU/TPU host end to end in one command and writes one JSON report.

  python -m launch.accelerator_check [--out=accelerator_check.json] [--cifar=../shared/data/cifar10-jpg.tar.gz]
  python -m launch.accelerator_check --size=reduced      # the same checks at toy sizes (CPU; a test runs it)

1. `devices`, `versions`: what JAX sees and which libraries it runs with.
2. `matmul_peak`: bf16 and fp32 matrix-product FLOP/s measured here (fp32 with JAX's default precision,
   which is TF32 on recent NVIDIA GPUs). MFU is a step's FLOPs (6 x MACs per image) over the bf16 peak.
3. `train_step`: the trainer's own step (classic.train.setup, timed as `classic.bench` does) on random
   uint8 images: resnet50 in bf16 at batch 256 per device, resnet20 in fp32 at 128, inception_v3 in bf16
   at 128. Images/s (median of timed steps), compile s, MFU, XLA's memory plan, the device's peak memory.
4. `input_pipeline`: classic's input pipeline with the resnet50 recipe (scale augmentation + 224 crop +
   flip + PCA lighting) on an ImageNet-like JPEG folder built from scikit-learn's photos
   (launch/benchmarks/imagenet_like.py): images/s with one grain worker per core, against the resnet50 step's rate.
5. `real_run`: ResNet-20 trained on the CIFAR-10 JPEGs for a few hundred steps through `Trainer`:
   the loss must fall; the evaluation counts all 10,000 test images.
6. `determinism`: a small BatchNorm ResNet trained on the digits through `python -m classic.main`, in
   separate processes as users run it: the same N steps twice (`runs_equal`: every logged number equal,
   bit for bit) and stopped at N/2 then resumed by a new process (`resume_equal`). On a GPU, `cost`: the
   step time of resnet50 (bf16) and resnet20 with `deterministic=True` over `False` (classic.bench in
   subprocesses; a ratio above 1 is what determinism costs).

7. `cifar_speed`: ResNet-20 at batch 128 per device (fp32), as in `train_step`, with its CIFAR data held on the device
   (`data_on_device=True`: the step draws, gathers and pad-crop-flips its own batch, so this is the
   Trainer's whole per-step work), timed with `steps_per_call` 1 and 16 and `replicas` 1 and 5:
   images/s over all replicas, each against the host-fed step of `train_step.resnet20`, and the
   wall time a 64k-iteration run (He et al.'s schedule) would take at the best single-replica rate.

A section that fails records its error and the others still run; the exit status is 1 if any failed.
`--size=full` (the default on GPU/TPU) finishes within about 8 minutes on one GPU; `reduced` (the default
on CPU) keeps every section and field at toy sizes.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform as platform_lib
import sys
import tempfile
import time
import traceback

from absl import app, flags, logging

# (report key, config file, variant, half_precision, batch per device)
MODELS = (("resnet50_bf16", "resnet", "resnet50", True, 256),
          ("resnet20", "resnet", "resnet20", False, 128),
          ("inception_v3_bf16", "inception_v3", "inception_v3", True, 128))

SIZES = {
    "full": dict(batch_scale=1, image_size={}, steps=20, warmup=3, matmul_n=8192,
                 folder_images=2200, folder_classes=20, input_batch=128, input_batches=16,
                 real_steps=600, real_batch=128, real_log_every=100, determinism_steps=200,
                 cifar_steps=(1, 16), cifar_replicas=(1, 5), cifar_calls=10),
    "reduced": dict(batch_scale=1 / 32, image_size={"resnet50": 64, "inception_v3": 139}, steps=2, warmup=1,
                    matmul_n=512, folder_images=48, folder_classes=4, input_batch=16, input_batches=2,
                    real_steps=30, real_batch=32, real_log_every=10, determinism_steps=6,
                    cifar_steps=(1, 4), cifar_replicas=(1, 2), cifar_calls=2),
}

LIBRARIES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "libtpu", "flax", "optax",
             "orbax-checkpoint", "ml_collections", "numpy", "grain", "tensorflow-datasets", "pillow",
             "nvidia-nvimgcodec-cu13")


def _versions() -> dict:
  out = {"python": platform_lib.python_version()}
  for name in LIBRARIES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
  return out


def _devices() -> dict:
  import jax
  devices = jax.devices()
  first = devices[0]
  return {"platform": first.platform, "kind": first.device_kind, "count": len(devices),
          "local_count": jax.local_device_count(), "processes": jax.process_count(),
          "platform_version": getattr(first.client, "platform_version", ""),
          "host_cpus": os.cpu_count()}


def _peak_memory_bytes() -> int | None:
  import jax
  stats = jax.local_devices()[0].memory_stats()
  return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def matmul_peaks(n: int) -> dict:
  from classic.train.timing import matmul_peak
  return {"n": n, **{f"{name}_flops_per_s": matmul_peak(n, 5, dtype, warmup=2)
                     for name, dtype in (("bf16", "bfloat16"), ("fp32", "float32"))}}


def _config(family: str, variant: str):
  from configs import common
  return common.load(f"{family}:{variant}")


def train_steps(size: dict, bf16_peak: float, keys: list[str]) -> dict:
  import jax

  from classic.train import timing
  results = {}
  for key, family, variant, half, per_device in (m for m in MODELS if m[0] in keys):
    try:
      config = _config(family, variant)
      config.half_precision = half
      config.batch_size = max(1, int(per_device * size["batch_scale"])) * jax.device_count()
      if variant in size["image_size"]:
        config.image_size = size["image_size"][variant]
      r = timing.train_step_speed(config, size["steps"], size["warmup"])
      r.update(variant=config.variant, half_precision=half, batch_per_device=config.batch_size // jax.device_count(),
               mfu=r["train_flops_per_s"] / bf16_peak if bf16_peak else None,
               device_peak_memory_bytes=_peak_memory_bytes())
      results[key] = r
    except Exception as e:  # noqa: BLE001 - one model's failure (out of memory, ...) is a finding
      results[key] = _error(e)
    logging.info("train step %s: %s", key, results[key])
  return results


def cifar_speed(size: dict, host_fed: dict) -> dict:
  """ResNet-20 with its data on the device, K steps per call and N replicas (issue: CIFAR at GPU speed)."""
  import jax

  from classic.train import timing
  runs, host_rate = {}, host_fed.get("img_per_s")
  batch = max(1, int(128 * size["batch_scale"])) * jax.device_count()   # train_step.resnet20's batch
  for k in size["cifar_steps"]:
    for n in size["cifar_replicas"]:
      config = _config("resnet", "resnet20")
      config.batch_size, config.data_on_device, config.steps_per_call, config.replicas = batch, True, k, n
      for field in ("log_every", "eval_every", "checkpoint_every"):   # multiples of K, as validate asks
        config[field] = k
      config.train_steps = k
      r = timing.train_step_speed(config, size["cifar_calls"], 1)
      runs[f"k{k}_r{n}"] = {"steps_per_call": k, "replicas": n, "img_per_s": r["img_per_s"],
                            "step_s_median": r["step_s_median"], "compile_s": r["compile_s"],
                            "over_host_fed_step": r["img_per_s"] / host_rate if host_rate else None}
      logging.info("cifar speed K=%d N=%d: %s", k, n, runs[f"k{k}_r{n}"])
  best_single = max(r["img_per_s"] for r in runs.values() if r["replicas"] == 1)
  return {"variant": "resnet20", "batch": batch, "runs": runs, "host_fed_img_per_s": host_rate,
          "run_64k_minutes": 64_000 * batch / best_single / 60}


def input_pipeline(size: dict, folder: str) -> dict:
  from classic.train import timing
  from launch.benchmarks import imagenet_like
  t = time.perf_counter()
  imagenet_like.build(folder, size["folder_images"], size["folder_classes"])
  build_s = time.perf_counter() - t
  config = _config("resnet", "resnet50")
  config.dataset, config.model.num_classes = folder, size["folder_classes"]
  config.in_memory, config.batch_size = False, size["input_batch"]
  r = timing.input_speed(config, size["input_batches"])
  if r["input_img_per_s"] is None:
    return {"error": r["input_unavailable"]}
  return {"recipe": f"{config.variant}: augment={config.augment} scale_range={tuple(config.scale_range)} "
                    f"pca_lighting={config.pca_lighting} image_size={config.image_size}",
          "images": size["folder_images"], "batch": config.batch_size, "batches": size["input_batches"],
          "img_per_s": r["input_img_per_s"], "workers": r["input_workers"],
          "jpeg_regions": r["input_jpeg_regions"],
          "batch_shape": [config.batch_size, config.image_size, config.image_size, config.channels],
          "folder_build_s": build_s, "host_cpus": os.cpu_count()}


def real_run(size: dict, cifar: str) -> dict:
  from classic.train.loop import Trainer
  if not os.path.exists(cifar):
    return {"error": f"the CIFAR-10 JPEG archive is not at {cifar}: pass --cifar=PATH "
                     "(../shared/data/cifar10-jpg.tar.gz in the development checkout)."}
  config = _config("resnet", "resnet20")
  config.dataset = os.path.abspath(cifar)
  config.batch_size, config.train_steps = size["real_batch"], size["real_steps"]
  config.log_every = size["real_log_every"]
  config.eval_every = config.checkpoint_every = config.train_steps
  config.eval_batch_size = 1000
  with tempfile.TemporaryDirectory() as workdir:
    t = time.perf_counter()
    trainer = Trainer(config, workdir)
    setup_s = time.perf_counter() - t
    t = time.perf_counter()
    final = trainer.train()
    train_s = time.perf_counter() - t
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      logged = [json.loads(line) for line in f if line.strip()]
  losses = [m["train/loss"] for m in logged]
  return {"variant": config.variant, "steps": final["step"], "batch": config.batch_size,
          "setup_s": setup_s, "train_and_eval_s": train_s, "train_loss": losses,
          "loss_fell": losses[-1] < losses[0], "eval_top1": final["eval/top1"], "eval_count": final["eval/count"],
          "img_per_s_last_window": logged[-1]["img_per_s"]}


# The determinism run: a BatchNorm ResNet (convolutions and batch reductions, where GPU kernels can be
# non-deterministic) on the bundled digits, with a constant learning rate so that a run stopped by a
# smaller train_steps and resumed to N follows the same schedule as the uninterrupted one.
DETERMINISM_RUN = ("--config=configs/resnet.py:resnet20", "--config.dataset=digits", "--config.model.depth=8",
                   "--config.augment=shift", "--config.batch_size=64", "--config.eval_batch_size=360",
                   "--config.optimizer.schedule=constant", "--config.optimizer.lr=0.05")
# (report key, config, half precision, batch per device) of the step timed with determinism on and off.
DETERMINISM_COST = (("resnet50_bf16", "configs/resnet.py:resnet50", True, 256),
                    ("resnet20", "configs/resnet.py:resnet20", False, 128))


def _child_env() -> dict:
  """Subprocesses share the accelerator with this process: they allocate as they go."""
  return {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


def _logged_numbers(workdir: str) -> dict[int, dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f if line.strip()]
  return {m["step"]: {k: v for k, v in m.items() if k.startswith(("train/", "eval/"))} for m in logged}


def determinism(size: dict, platform_name: str, tmp: str) -> dict:
  import subprocess
  n = size["determinism_steps"]
  half = n // 2
  common = [*DETERMINISM_RUN, f"--config.log_every={half}", f"--config.eval_every={n}",
            f"--config.checkpoint_every={half}"]

  def train(name: str, steps: int) -> str:
    workdir = os.path.join(tmp, name)
    proc = subprocess.run([sys.executable, "-m", "classic.main", *common, f"--config.train_steps={steps}",
                           f"--workdir={workdir}"], capture_output=True, text=True, env=_child_env(), timeout=900)
    if proc.returncode:
      raise RuntimeError(f"classic.main exited {proc.returncode}: {proc.stderr[-1500:]}")
    return workdir

  first, second = _logged_numbers(train("first", n)), _logged_numbers(train("second", n))
  train("resumed", half)
  resumed = _logged_numbers(train("resumed", n))
  # The resumed run evaluated at its stop (step N/2) too: compare what both logged.
  resume_equal = all({k: v for k, v in resumed[s].items() if k in m} == m for s, m in first.items())
  out = {"run": " ".join(DETERMINISM_RUN[:3]), "steps": n, "runs_equal": first == second,
         "resume_equal": resume_equal and resumed.keys() == first.keys(),
         "final": first[n], "second_final": second[n], "resumed_final": resumed[n]}
  if platform_name != "gpu":
    out["cost"] = None
    out["cost_note"] = f"{platform_name.upper()} execution is deterministic without flags: nothing to measure"
    return out
  out["cost"] = {}
  for key, spec, half_precision, per_device in DETERMINISM_COST:
    rates = {}
    for on in (True, False):
      proc = subprocess.run([sys.executable, "-m", "classic.bench", f"--config={spec}", "--json",
                             f"--config.half_precision={half_precision}", f"--config.deterministic={on}",
                             f"--batch={per_device}", "--steps=20", "--data_batches=0"],
                            capture_output=True, text=True, env=_child_env(), timeout=900)
      if proc.returncode:
        raise RuntimeError(f"classic.bench exited {proc.returncode}: {proc.stderr[-1500:]}")
      rates[on] = json.loads(proc.stdout.strip().splitlines()[-1])["img_per_s"]
    out["cost"][key] = {"img_per_s_deterministic": rates[True], "img_per_s_not": rates[False],
                        "ratio": rates[False] / rates[True]}
  return out


def _error(e: BaseException) -> dict:
  return {"error": f"{type(e).__name__}: {e}".splitlines()[0][:500], "traceback": traceback.format_exc()[-2000:]}


def run(size_name: str, cifar: str, folder: str, models: list[str] = tuple(m[0] for m in MODELS)) -> dict:
  import jax
  start = time.perf_counter()
  devices = _devices()
  if size_name == "auto":
    size_name = "reduced" if devices["platform"] == "cpu" else "full"
  size = SIZES[size_name]
  report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "size": size_name, "host": platform_lib.node(), "devices": devices, "versions": _versions()}
  logging.info("%s", {k: report[k] for k in ("devices", "versions")})
  try:
    report["matmul_peak"] = matmul_peaks(size["matmul_n"])
  except Exception as e:  # noqa: BLE001
    report["matmul_peak"] = _error(e)
  bf16_peak = report["matmul_peak"].get("bf16_flops_per_s")
  report["train_step"] = train_steps(size, bf16_peak, list(models))
  jax.clear_caches()
  with tempfile.TemporaryDirectory() as tmp:
    try:
      report["input_pipeline"] = input_pipeline(size, folder or os.path.join(tmp, "imagenet_like"))
      step = report["train_step"].get("resnet50_bf16", {}).get("img_per_s")  # None: not timed (--models)
      report["input_pipeline"]["step_img_per_s"] = step
      report["input_pipeline"]["input_over_step"] = report["input_pipeline"]["img_per_s"] / step if step else None
    except Exception as e:  # noqa: BLE001
      report["input_pipeline"] = _error(e)
  try:
    report["real_run"] = real_run(size, cifar)
  except Exception as e:  # noqa: BLE001
    report["real_run"] = _error(e)
  try:
    report["cifar_speed"] = cifar_speed(size, report["train_step"].get("resnet20", {}))
  except Exception as e:  # noqa: BLE001
    report["cifar_speed"] = _error(e)
  with tempfile.TemporaryDirectory() as tmp:
    try:
      report["determinism"] = determinism(size, devices["platform"], tmp)
    except Exception as e:  # noqa: BLE001
      report["determinism"] = _error(e)
  report["failed"] = sorted(k for k, v in _sections(report)
                            if "error" in v or False in (v.get("runs_equal"), v.get("resume_equal")))
  report["wall_s"] = time.perf_counter() - start
  return report


def _sections(report: dict):
  for key in ("matmul_peak", "input_pipeline", "real_run", "cifar_speed", "determinism"):
    yield key, report.get(key, {})
  for key, value in report.get("train_step", {}).items():
    yield f"train_step.{key}", value


def summary(report: dict) -> str:
  d = report["devices"]
  lines = [f"{d['count']} x {d['kind']} ({d['platform']}, {d['platform_version']}); "
           + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if k in ("python", "jax", "jaxlib", "flax")),
           f"matmul peak: bf16 {report['matmul_peak'].get('bf16_flops_per_s', 0) / 1e12:.2f} TFLOP/s, "
           f"fp32 {report['matmul_peak'].get('fp32_flops_per_s', 0) / 1e12:.2f} TFLOP/s"]
  for key, r in report["train_step"].items():
    lines.append(f"{key:<18} " + (f"error: {r['error']}" if "error" in r else
                                  f"batch {r['batch']:>5}  {r['img_per_s']:>9.1f} img/s  compile {r['compile_s']:5.1f} s  "
                                  f"MFU {r['mfu']:.3f}"))
  ip = report["input_pipeline"]
  lines.append("input pipeline     " + (f"error: {ip['error']}" if "error" in ip else
                                       f"{ip['img_per_s']:.0f} img/s on {ip['host_cpus']} CPUs"
                                       + (" (JPEG windows)" if ip.get("jpeg_regions") else " (whole JPEGs)")
                                       + (f" = {ip['input_over_step']:.2f} x the resnet50 step" if ip.get("input_over_step") else "")))
  rr = report["real_run"]
  lines.append("real run           " + (f"error: {rr['error']}" if "error" in rr else
                                       f"{rr['variant']} {rr['steps']} steps: loss {rr['train_loss'][0]:.3f} -> "
                                       f"{rr['train_loss'][-1]:.3f}, test top-1 {rr['eval_top1']:.4f} on {rr['eval_count']} images"))
  cs = report["cifar_speed"]
  lines.append("cifar speed        " + (f"error: {cs['error']}" if "error" in cs else ", ".join(
      f"K={r['steps_per_call']} N={r['replicas']} {r['img_per_s']:.0f} img/s" for r in cs["runs"].values())
      + f"; 64k iterations in {cs['run_64k_minutes']:.1f} min"))
  dt = report["determinism"]
  lines.append("determinism        " + (f"error: {dt['error']}" if "error" in dt else
                                       f"runs equal {dt['runs_equal']}, resume equal {dt['resume_equal']} "
                                       f"({dt['steps']} steps); cost " + (
                                           ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in dt["cost"].items())
                                           if dt["cost"] else dt["cost_note"])))
  lines.append(f"{'failed: ' + ', '.join(report['failed']) if report['failed'] else 'all sections ran'}; "
               f"{report['wall_s']:.0f} s")
  return "\n".join(lines)


def define_flags() -> None:
  """The command's flags; defined only when it runs as a command, so that tests and other commands can
  import this module."""
  flags.DEFINE_string("out", "accelerator_check.json", "Where to write the JSON report.")
  flags.DEFINE_enum("size", "auto", ["auto", "full", "reduced"],
                    "full: the real sizes (GPU/TPU); reduced: toy sizes; auto: reduced on CPU.")
  flags.DEFINE_string("cifar", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                            "cifar10-jpg.tar.gz"),
                      "The CIFAR-10 JPEG archive (or folder) for the real run.")
  flags.DEFINE_list("models", ",".join(m[0] for m in MODELS),
                    "Train steps to time, by report key (the default: all three).")
  flags.DEFINE_string("folder", "", "Where to build the ImageNet-like JPEGs (default: a temporary dir).")


def main(argv):
  del argv
  f = flags.FLAGS
  unknown = sorted(set(f.models) - {m[0] for m in MODELS})
  if unknown:
    print(f"error: --models: unknown {', '.join(unknown)}; known: {', '.join(m[0] for m in MODELS)}.", file=sys.stderr)
    sys.exit(2)
  from classic import platform
  platform.set_up_xla()
  # The determinism section's subprocesses share the accelerator: this process takes half its memory
  # (JAX's default is 75 %), unless the user chose otherwise.
  os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")
  report = run(f.size, f.cifar, f.folder, f.models)
  with open(f.out, "w") as out:
    json.dump(report, out, indent=1)
  print(summary(report))
  print(f"report: {os.path.abspath(f.out)}")
  sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
  define_flags()
  app.run(main)
