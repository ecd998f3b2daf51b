r"""Convert torchvision, timm or Keras weights into a classic workdir.

  python -m classic.convert --from=torchvision --arch=resnet50 --weights=resnet50.pth --workdir=runs/r50
  python -m classic.convert --from=timm --arch=inception_v4 --weights=model.safetensors --workdir=...
  python -m classic.convert --from=keras --weights=resnet50.keras --workdir=...   # or --arch=ResNet50
  python -m classic.main --workdir=runs/r50 --mode=eval --config.dataset=imagenet2012   # evaluate
  python -m classic.main --config=configs/resnet.py:resnet50 --config.init_from=runs/r50 ...  # fine-tune

The workdir gets config.json (the matching classic variant, its deviation switches and the source's
preprocessing) and an Orbax checkpoint at step 0 in the format the trainer restores: the converted
parameters and BN statistics in a fresh train state (optimizer state initialised, EMA = parameters
where the config averages). Weights files: `.pth`/`.pt` (needs torch), `.safetensors` (read with
numpy, no torch), `.npz`; for Keras a saved `.keras`/`.h5` model, or a keras.applications weights
file with --arch.
"""

from __future__ import annotations

import os
import sys

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from classic import command, interop, models
from classic.train import checkpoint, optim, state as state_lib

_FROM = flags.DEFINE_enum("from", None, ["torchvision", "timm", "keras"], "Source zoo.")
_ARCH = flags.DEFINE_string("arch", None, "Architecture name in the source zoo (e.g. resnet50, "
                            "inception_v4, ResNet50V2); for Keras optional with a saved model.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file (.pth, .safetensors, .npz, .keras, .h5).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir to write (config.json + checkpoints/).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Expected class count (checked).")
flags.mark_flags_as_required(["from", "weights", "workdir"])


def read_state_dict(path: str):
  """A mapping of names to arrays from .safetensors (numpy), .npz, or .pth/.pt/.bin (torch)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"No such weights file: {path}")
  if path.endswith(".safetensors"):
    try:
      from safetensors.numpy import load_file
    except ImportError as e:
      raise ImportError(f"Reading {path} needs safetensors (pip install safetensors).") from e
    return load_file(path)
  if path.endswith(".npz"):
    with np.load(path) as f:
      return dict(f)
  try:
    import torch
  except ImportError as e:
    raise ImportError(f"Reading {path} needs torch (pip install torch); a .safetensors file "
                      "does not.") from e
  sd = torch.load(path, map_location="cpu", weights_only=True)
  for key in ("state_dict", "model"):  # training checkpoints that wrap the state dict
    if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
      sd = sd[key]
  return sd


def convert(source: str, arch: str | None, weights: str, num_classes: int | None = None):
  """(config, variables) from a weights file of `source`."""
  if source == "keras":
    return interop.from_keras(weights, arch=arch, num_classes=num_classes)
  if not arch:
    raise ValueError(f"--arch is needed for --from={source}.")
  convert_fn = interop.from_torchvision if source == "torchvision" else interop.from_timm
  return convert_fn(arch, read_state_dict(weights), num_classes=num_classes)


def write_workdir(workdir: str, config, variables) -> None:
  """config.json + a step-0 checkpoint that classic.train.loop.Trainer restores."""


  os.makedirs(workdir, exist_ok=True)
  checkpoint.check_config(workdir, config)
  checkpoint.write_config(workdir, config)
  model = models.build(config.model)
  tx, _ = optim.create(config)
  # Shapes of a fresh state, then the converted arrays in place of the initialised ones.
  shape = (1, config.image_size, config.image_size, 3)
  abstract = jax.eval_shape(lambda: state_lib.create(model, tx, config, shape))
  params = jax.tree.map(jnp.asarray, variables["params"])
  stats = jax.tree.map(jnp.asarray, variables.get("batch_stats", {}))
  if jax.tree.structure(params) != jax.tree.structure(abstract.params):
    raise ValueError("converted parameters do not match the module's (converter bug)")
  key = jax.random.split(jax.random.key(config.seed))[1]
  state = state_lib.TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats, opt_state=tx.init(params),
      ema_params=jax.tree.map(jnp.copy, params) if config.ema_decay else {},
      rng=jax.random.key_data(key), skipped=jnp.zeros((), jnp.int32))
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints, async_save=False)
  if ckpt.latest_step() is not None:
    ckpt.close()
    raise ValueError(f"{workdir} already holds a checkpoint: convert into a new workdir.")
  ckpt.save(0, state, {"step": 0, "seed": config.seed})
  ckpt.close()


def main(argv) -> int:
  del argv
  config, variables = convert(_FROM.value, _ARCH.value, _WEIGHTS.value, _NUM_CLASSES.value)
  write_workdir(os.path.abspath(os.path.expanduser(_WORKDIR.value)), config, variables)
  n = sum(int(a.size) for a in __import__("jax").tree.leaves(variables["params"]))
  print(f"wrote {_WORKDIR.value}: {config.variant} ({config.model.name}, {n:,} parameters, "
        f"{config.model.num_classes} classes, input {config.image_size}, mean {tuple(config.mean)}, "
        f"std {tuple(config.std)})")
  return 0


if __name__ == "__main__":
  command.run(lambda argv: sys.exit(main(argv)), lambda e: str(e) if isinstance(e, ImportError) else None)
