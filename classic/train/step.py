"""Pure functions of one step: input preprocessing, loss, train step and eval step.

They are jit-compiled by the loop over the mesh; nothing here talks to the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from classic.data import augment, photometric
from classic.train.state import TrainState


def eval_size(config) -> int:
  """The side of the evaluation crop: config.eval_image_size, else the training size."""
  return config.get("eval_image_size", 0) or config.image_size


def preprocess(batch: dict[str, jax.Array], config, key: str = "image", resize: bool = True,
               size: int | None = None) -> jax.Array:
  """uint8 images batch[key] -> normalised float inputs at `size` (default config.image_size; resized
  on device if needed and `resize`; a dense evaluation keeps each test scale's size)."""
  x = batch[key].astype(jnp.float32)
  if "photometric" in batch:
    x = photometric.distort(x, batch["photometric"])
  if "lighting" in batch:
    x = x + augment.lighting_shift(batch["lighting"])[:, None, None, :]
  size = size or config.image_size
  if resize and x.shape[-3:-1] != (size, size):
    x = jax.image.resize(x, x.shape[:-3] + (size, size, x.shape[-1]), "bilinear")
  mean = jnp.asarray(config.mean, jnp.float32)
  std = jnp.asarray(config.std, jnp.float32)
  x = (x - mean) / std
  return x.astype(jnp.bfloat16) if config.half_precision else x


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  targets = jax.nn.one_hot(labels, logits.shape[-1])
  if smoothing:
    targets = optax.smooth_labels(targets, smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model, tx, lr_fn, config):
  """One update. Returns the new state and this step's metrics (device arrays, not fetched)."""
  images = preprocess(batch, config)
  labels = batch["label"]
  dropout_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

  def loss_fn(params):
    model_vars = {"params": params}
    if state.batch_stats:
      model_vars["batch_stats"] = state.batch_stats
    logits, updates = model.apply(model_vars, images, train=True, mutable=["batch_stats", "aux"],
                                  rngs={"dropout": dropout_key})
    loss = cross_entropy(logits, labels, config.label_smoothing).mean()
    total = loss
    for aux_logits in jax.tree.leaves(updates.get("aux", {})):
      total = total + config.aux_weight * cross_entropy(aux_logits, labels, config.label_smoothing).mean()
    return total, (loss, logits, updates.get("batch_stats", {}))

  (total, (loss, logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if config.ema_decay:
    d = config.ema_decay
    ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, ema, params)
  # An overflowing update (huge learning rate) is as fatal as a NaN gradient: check it too.
  finite = jnp.isfinite(total) & jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(updates))
  new = state.replace(step=state.step + 1, params=params, batch_stats=new_stats, opt_state=opt_state,
                      ema_params=ema)
  # A non-finite step never touches the weights: the update is dropped and counted. The loop then
  # stops the run (config.nonfinite='stop') or goes on ('skip').
  new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
  new = new.replace(step=state.step + 1, skipped=state.skipped + (~finite).astype(jnp.int32))
  metrics = {
      "train/loss": loss,
      "train/total_loss": total,
      "train/top1_err": 1.0 - jnp.mean(jnp.argmax(logits, -1) == labels),
      "train/grad_norm": grad_norm,
      "train/lr": lr_fn(state.step),
      "train/finite": finite.astype(jnp.float32),
  }
  return new, metrics


def train_steps(state: TrainState, batches: dict[str, jax.Array], **step_args):
  """config.steps_per_call updates in one call: `batches` stacks K batches on a leading axis, and the
  per-step metrics come back stacked the same way. The body is `train_step` itself (lax.scan), so the
  numbers are those of K separate calls."""
  return jax.lax.scan(lambda s, batch: train_step(s, batch, **step_args), state, batches)


def train_step_on_device(state: TrainState, data: dict[str, jax.Array], order: jax.Array, seed: jax.Array, *,
                         batch_fn, **step_args):
  """One update on the batch of state.step, computed on the device from the held split, the run's
  order and its seed (config.data_on_device; classic.data.on_device): `batch_fn(data, order, seed, step)`."""
  return train_step(state, batch_fn(data, order, seed, state.step), **step_args)


def repeat_on_device(state: TrainState, *inputs, one_step, steps: int):
  """`steps` calls of one_step(state, *inputs) as one XLA loop; metrics stacked on a leading axis."""
  return jax.lax.scan(lambda s, _: one_step(s, *inputs), state, None, length=steps)


def eval_step(model_vars, batch: dict[str, jax.Array], *, model, config) -> dict[str, jax.Array]:
  """Sums over the batch of correct top-1/top-5, loss and count; padding (mask 0) counts nothing.

  Multi-view batches (B, V, H, W, C), e.g. ten crops, average the views' softmax outputs. A dense
  evaluation (config.eval_crop='dense', Simonyan & Zisserman 2015 §3.2) has one image array per test
  scale ('image', 'image_scale1', ...): the fully-convolutional net's class scores, averaged over its
  score map, of each scale and of its mirror image are soft-maxed and averaged.
  """
  if config.eval_crop == "dense":
    keys = sorted(k for k in batch if k.startswith("image"))
    probs = 0.0
    for key in keys:
      x = preprocess(batch, config, key, resize=False)
      logits = model.apply(model_vars, jnp.concatenate([x, x[:, :, ::-1]]), train=False).astype(jnp.float32)
      probs = probs + jax.nn.softmax(logits).reshape(2, x.shape[0], -1).mean(0)
    probs = probs / len(keys)
  else:
    images = preprocess(batch, config, size=eval_size(config))
    views = 1
    if images.ndim == 5:
      views = images.shape[1]
      images = images.reshape((-1,) + images.shape[2:])
    logits = model.apply(model_vars, images, train=False).astype(jnp.float32)
    probs = jax.nn.softmax(logits).reshape(-1, views, logits.shape[-1]).mean(1)
  labels, mask = batch["label"], batch["mask"]
  top5 = jax.lax.top_k(probs, min(5, probs.shape[-1]))[1]
  nll = -jnp.log(jnp.take_along_axis(probs, labels[:, None], 1)[:, 0] + 1e-12)
  return {
      "correct1": jnp.sum((top5[:, 0] == labels) * mask),
      "correct5": jnp.sum(jnp.any(top5 == labels[:, None], -1) * mask),
      "loss": jnp.sum(nll * mask),
      "count": jnp.sum(mask),
  }
