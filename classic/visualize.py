r"""What a trained convnet has learned, as Zeiler & Fergus 2014 show it ("Visualizing and
understanding convolutional networks"): deconvnet projections (§2.1, Fig. 2) and occlusion
sensitivity (§4.2, Fig. 7).

  python -m classic.visualize --workdir=RUN --layer=conv5_out [--images=64] [--channels=8] [--top=9]
  python -m classic.visualize --workdir=RUN --occlusion --indices=0,1,2,3 [--patch=32 --stride=8]

Deconvnet: for each of the `--channels` most active feature maps of `--layer` (a map the model
sows into 'intermediates', e.g. ZFNet's conv1_out ... pool5_out), the `--top` eval images with its
strongest activation; that one activation is projected back to pixel space through the net's
layers in reverse: max-pool switches (the forward argmax), ReLU applied to the backward signal (the
deconvnet's rectification, not the forward mask), transposed filters; contrast normalisation is
passed through unchanged, as the paper's deconvnet has none. Written as deconv_<layer>.png (one
row per feature map: projections, then the same images) and deconv_<layer>.npz (the projections).

Occlusion: a grey square (the normalisation mean) slides over each chosen image; the map is the
probability of the image's true class with the square at each position. Written as occlusion.png
(image | map per row) and occlusion.npz. Both run in eval mode on the run's eval split and its
latest checkpoint.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from classic import command
from classic.models.layers import LocalResponseNorm, relu_rule
from classic.train import checkpoint, state as state_lib
from classic.train.loop import Trainer
from classic.train.step import preprocess



def define_flags():
  """The command's flags, defined when run as a command (importing the library defines none)."""
  flags.DEFINE_string("workdir", None, "A trained run (config.json + checkpoint).")
  flags.DEFINE_string("layer", "", "Deconvnet: the sown feature map to project, e.g. conv5_out.")
  flags.DEFINE_integer("images", 64, "Deconvnet: eval images searched for top activations.")
  flags.DEFINE_integer("channels", 8, "Deconvnet: feature maps shown (the most active).")
  flags.DEFINE_integer("top", 9, "Deconvnet: images per feature map.")
  flags.DEFINE_bool("occlusion", False, "Occlusion-sensitivity maps instead.")
  flags.DEFINE_list("indices", ["0", "1", "2", "3"], "Occlusion: eval-split image indices.")
  flags.DEFINE_integer("patch", 0, "Occlusion: square side in input pixels (0: a quarter of it).")
  flags.DEFINE_integer("stride", 0, "Occlusion: step in pixels (0: patch / 4).")
  flags.DEFINE_string("out", "", "Output directory (default: the workdir).")
  flags.mark_flag_as_required("workdir")


class VisualizeError(Exception):
  pass


# --- the deconvnet's backward rules -------------------------------------------------------------
def _deconv_relu():

  @jax.custom_vjp
  def relu(x):
    return jnp.maximum(x, 0)

  relu.defvjp(lambda x: (jnp.maximum(x, 0), None), lambda _, g: (jnp.maximum(g, 0),))
  return relu


@contextlib.contextmanager
def deconvnet_mode():
  """Inside, every model's ReLU (classic.models.layers.relu, the one every family calls) rectifies
  the backward signal, and LRN passes it unchanged (flax method interception)."""


  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, LocalResponseNorm) and context.method_name == "__call__":
      x = args[0]
      return x + jax.lax.stop_gradient(next_fun(*args, **kwargs) - x)
    return next_fun(*args, **kwargs)

  with relu_rule(_deconv_relu()), nn.intercept_methods(interceptor):
    yield


# --- loading a run ------------------------------------------------------------------------------
def load(workdir: str):
  """(config, model, variables, eval pipeline) of a trained run."""
  config = checkpoint.read_config(workdir)
  if config.get("replicas", 1) > 1:
    raise VisualizeError(f"{workdir} trained {config.replicas} replicas in one program; visualisations show one "
                         "network: train the seed you want alone (--config.seed=S, replicas=1).")
  trainer = Trainer(config, workdir, eval_only=True)
  if trainer.checkpointer.latest_step() is None:
    raise VisualizeError(f"{workdir}: no checkpoint; train it first (python -m classic.main --workdir={workdir}).")
  trainer.checkpointer.close()
  return config, trainer.model, state_lib.variables(trainer.state), trainer.eval_data


def eval_images(pipe, config, n: int):
  """The first n eval images as network inputs, display images in [0, 1], and labels."""

  raw, labels = [], []
  for b in range(pipe.num_eval_batches):
    batch = pipe.eval_batch(b)
    keep = batch["mask"] > 0
    raw.append(batch["image"][keep])
    labels.append(batch["label"][keep])
    if sum(len(r) for r in raw) >= n:
      break
  raw, labels = np.concatenate(raw)[:n], np.concatenate(labels)[:n]
  if raw.ndim == 5:
    raise VisualizeError("multi-view evaluation (eval_crop='ten_crop'): use --config.eval_crop=center.")
  inputs = preprocess({"image": jnp.asarray(raw)}, config)
  size = config.image_size
  shown = jax.image.resize(jnp.asarray(raw, jnp.float32) / 255.0, (len(raw), size, size, raw.shape[-1]),
                           "bilinear")
  return inputs, np.clip(np.asarray(shown), 0, 1), labels


# --- deconvnet projections ----------------------------------------------------------------------
def feature_map(model, variables, x, layer: str):
  _, state = model.apply(variables, x, train=False, mutable=["intermediates"])
  found = {k: v[0] for k, v in _flat(state.get("intermediates", {})).items()}
  if layer not in found:
    known = ", ".join(sorted(found)) or "none (this model sows no feature maps)"
    raise VisualizeError(f"no feature map {layer!r}; this model's: {known}.")
  return found[layer]


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = v
  return out


def project(model, variables, x, layer: str, channel, position):
  """Deconvnet projections: for each image i, its activation at (position[i], channel[i]) of `layer`
  carried back to pixel space. x: (N, H, W, C); channel: (N,); position: (N, 2) -> (N, H, W, C)."""

  def fmap(inputs):
    return feature_map(model, variables, inputs, layer)

  with deconvnet_mode():
    acts, vjp = jax.vjp(fmap, x)
    n = jnp.arange(x.shape[0])
    seed = jnp.zeros_like(acts).at[n, position[:, 0], position[:, 1], channel].set(
        acts[n, position[:, 0], position[:, 1], channel])
    return vjp(seed)[0]


def deconvnet(model, variables, inputs, layer: str, channels: int, top: int):
  """The `channels` most active maps of `layer`; per map its `top` images and their projections."""
  acts = np.asarray(feature_map(model, variables, inputs, layer))   # (N, h, w, K)
  peak = acts.reshape(len(acts), -1, acts.shape[-1]).max(1)         # (N, K)
  maps = np.argsort(-peak.max(0))[:channels]
  rows = []
  for k in maps:
    images = np.argsort(-peak[:, k])[:top]
    where = [np.unravel_index(np.argmax(acts[i, :, :, k]), acts.shape[1:3]) for i in images]
    proj = project(model, variables, inputs[images], layer, jnp.full((len(images),), k),
                   jnp.asarray(where))
    rows.append({"channel": int(k), "images": images, "positions": np.asarray(where),
                 "activations": peak[images, k], "projections": np.asarray(proj)})
  return rows


# --- occlusion sensitivity ----------------------------------------------------------------------
def occlusion(model, variables, inputs, labels, patch: int, stride: int, batch: int = 64):
  """(N, gh, gw): probability of each image's true class with the grey square at each position.
  The square is 0 in the normalised input, i.e. the normalisation mean (grey)."""
  size = inputs.shape[1]
  starts = list(range(0, size - patch + 1, stride))
  apply = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, x, train=False).astype(jnp.float32)))
  maps = np.zeros((len(inputs), len(starts), len(starts)), np.float32)
  for i in range(len(inputs)):
    cells = [(r, c) for r in range(len(starts)) for c in range(len(starts))]
    for lo in range(0, len(cells), batch):
      chunk = cells[lo:lo + batch]
      occluded = jnp.stack([inputs[i].at[starts[r]:starts[r] + patch, starts[c]:starts[c] + patch].set(0)
                            for r, c in chunk])
      probs = np.asarray(apply(variables, occluded))[:, int(labels[i])]
      for (r, c), p in zip(chunk, probs):
        maps[i, r, c] = p
  return maps, starts


# --- pictures -----------------------------------------------------------------------------------
def _normalise(p):
  p = p - p.mean()
  scale = np.abs(p).max()
  return np.clip(0.5 + 0.5 * p / scale, 0, 1) if scale > 0 else np.full_like(p, 0.5)


def _rgb(img):
  return np.repeat(img, 3, -1) if img.shape[-1] == 1 else img[..., :3]


def class_name(label: int, names) -> str:
  """The class's name where the data set has names ('airplane'), else its index."""
  return names[int(label)] if int(label) < len(names) else f"class {int(label)}"


def write_deconv(rows, shown, layer: str, out: Path, labels=None, names=()) -> Path:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  top = max(len(r["images"]) for r in rows)
  fig, axes = plt.subplots(len(rows), 2 * top, figsize=(0.9 * 2 * top, 0.9 * len(rows) + 0.4),
                           squeeze=False)
  for ax in axes.flat:
    ax.axis("off")
  for i, r in enumerate(rows):
    for j, (img, proj) in enumerate(zip(r["images"], r["projections"])):
      axes[i, j].imshow(_rgb(_normalise(proj)))
      axes[i, top + j].imshow(_rgb(shown[img]))
      if labels is not None:
        axes[i, top + j].set_title(class_name(labels[img], names), fontsize=5)
    axes[i, 0].set_title(f"map {r['channel']}", fontsize=6, loc="left")
  fig.suptitle(f"{layer}: deconvnet projections (left) and their images (right)", fontsize=8)
  path = out / f"deconv_{layer.replace('/', '_')}.png"
  fig.savefig(path, dpi=80)
  plt.close(fig)
  np.savez(path.with_suffix(".npz"), **{f"map{r['channel']}_{k}": r[k] for r in rows
                                        for k in ("images", "positions", "activations", "projections")})
  return path


def write_occlusion(maps, shown, labels, indices, out: Path, names=()) -> Path:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(len(maps), 2, figsize=(4, 2 * len(maps)), squeeze=False)
  for i, (m, img) in enumerate(zip(maps, shown)):
    axes[i, 0].imshow(_rgb(img))
    axes[i, 0].set_title(f"image {indices[i]}: {class_name(labels[i], names)}", fontsize=7)
    im = axes[i, 1].imshow(m, vmin=0, vmax=1, cmap="jet")
    axes[i, 1].set_title("p(true class), occluded here", fontsize=7)
    fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
    for ax in axes[i]:
      ax.axis("off")
  fig.tight_layout()
  path = out / "occlusion.png"
  fig.savefig(path, dpi=80)
  plt.close(fig)
  np.savez(out / "occlusion.npz", maps=maps, indices=np.asarray(indices), labels=labels,
           classes=np.array([class_name(label, names) for label in labels]))
  return path


def main(argv):
  del argv
  F = flags.FLAGS

  out = Path(F.out or F.workdir)
  out.mkdir(parents=True, exist_ok=True)
  config, model, variables, pipe = load(F.workdir)
  if F.occlusion:
    indices = [int(i) for i in F.indices]
    inputs, shown, labels = eval_images(pipe, config, max(indices) + 1)
    pick = np.asarray(indices)
    inputs, shown, labels = inputs[pick], shown[pick], labels[pick]
    patch = F.patch or max(1, config.image_size // 4)
    maps, _ = occlusion(model, variables, inputs, labels, patch, F.stride or max(1, patch // 4))
    path = write_occlusion(maps, shown, labels, indices, out, pipe.source.class_names)
  else:
    if not F.layer:
      raise VisualizeError("give --layer=NAME (a feature map, e.g. conv5_out) or --occlusion.")
    inputs, shown, labels = eval_images(pipe, config, F.images)
    rows = deconvnet(model, variables, inputs, F.layer, F.channels, F.top)
    path = write_deconv(rows, shown, F.layer, out, labels, pipe.source.class_names)
  print(json.dumps({"written": str(path)}))


if __name__ == "__main__":
  define_flags()
  command.run(main, lambda e: str(e) if isinstance(e, VisualizeError) else None)
