"""Optimizers and learning-rate schedules of the papers, from config.optimizer, with optax.

- sgd: momentum SGD (AlexNet, VGG, GoogLeNet, ResNet); rmsprop: TF-style, epsilon inside the square
  root (Inception v3/v4: decay 0.9, eps 1.0, momentum 0.9); adam.
- weight decay 'l2' adds wd * w to the gradient before momentum, which is what the papers' L2 term
  does; 'decoupled' adds it after, scaled by the learning rate only (Loshchilov & Hutter).
- filter_radius > 0: after each update, every convolution filter whose RMS exceeds the radius is
  scaled back to it (Zeiler & Fergus 2013 §3: radius 1e-1), `renormalize_filters`.
- schedules: constant; steps (x factor, or x scales[i], at each boundary: ResNet's /10 at 32k, 48k);
  exponential (x factor every decay_every steps: GoogLeNet's 4%/8 epochs, Inception's 0.94/2 epochs);
  cosine; each with an optional linear warm-up.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

# The enumerated fields' values (classic.train.defaults.CHOICES reads them here).
OPTIMIZERS = ("sgd", "rmsprop", "adam")
SCHEDULES = ("constant", "steps", "exponential", "cosine")
WEIGHT_DECAY_STYLES = ("l2", "decoupled")
DECAY_PARAMS = ("all", "kernels")


def schedule(config) -> Callable[[jax.Array], jax.Array]:
  o = config.optimizer
  lr, warmup = o.lr, o.warmup_steps
  if o.schedule == "constant":
    base = optax.constant_schedule(lr)
  elif o.schedule == "steps":
    scales = tuple(o.scales) if o.scales else (o.factor,) * len(o.boundaries)
    if len(scales) != len(o.boundaries):
      raise ValueError(f"optimizer.scales has {len(scales)} entries for {len(o.boundaries)} boundaries.")
    base = optax.piecewise_constant_schedule(lr, {int(b): float(s) for b, s in zip(o.boundaries, scales)})
  elif o.schedule == "exponential":
    if o.decay_every <= 0:
      raise ValueError("optimizer.schedule='exponential' needs optimizer.decay_every > 0 (steps).")
    base = optax.exponential_decay(lr, o.decay_every, o.factor, staircase=True)
  elif o.schedule == "cosine":
    base = optax.cosine_decay_schedule(lr, max(1, config.train_steps))
  else:
    raise ValueError(f"Unknown optimizer.schedule {o.schedule!r}: use one of {', '.join(SCHEDULES)}.")
  if not warmup:
    return base
  return lambda step: jnp.where(step < warmup, lr * (step + 1) / warmup, base(step))


def _decay_mask(which: str):
  if which == "all":
    return None
  if which == "kernels":
    return lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[-1], "key", None) == "kernel", params)
  raise ValueError(f"optimizer.decay_params must be one of {', '.join(map(repr, DECAY_PARAMS))}, got {which!r}.")


def renormalize_filters(radius: float) -> optax.GradientTransformation:
  """Updates that leave every convolution filter (a 4-D HWIO kernel's output channel) with an RMS of
  at most `radius`: a filter whose updated RMS exceeds it is scaled down to it, others are untouched
  (Zeiler & Fergus 2013 §3). Put last in a chain: it sees the final updates and the parameters."""

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("renormalize_filters needs the parameters: tx.update(updates, state, params).")

    def renormalized(u, p):
      if p.ndim != 4:
        return u
      new = p + u
      rms = jnp.sqrt(jnp.mean(jnp.square(new), axis=(0, 1, 2), keepdims=True))
      return new * jnp.minimum(1.0, radius / jnp.maximum(rms, 1e-12)) - p

    return jax.tree.map(renormalized, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def create(config) -> tuple[optax.GradientTransformation, Callable]:
  o = config.optimizer
  lr = schedule(config)
  decay = optax.add_decayed_weights(o.weight_decay, _decay_mask(o.decay_params)) if o.weight_decay else None
  if o.weight_decay_style not in WEIGHT_DECAY_STYLES:
    raise ValueError(f"optimizer.weight_decay_style must be one of {', '.join(map(repr, WEIGHT_DECAY_STYLES))}, "
                     f"got {o.weight_decay_style!r}.")
  l2 = decay if o.weight_decay_style == "l2" else None
  decoupled = decay if o.weight_decay_style == "decoupled" else None
  if o.name == "sgd":
    core = [optax.trace(o.momentum, nesterov=o.nesterov)] if o.momentum else []
  elif o.name == "rmsprop":
    core = [optax.scale_by_rms(decay=o.rms_decay, eps=o.eps, eps_in_sqrt=True)]
    core += [optax.trace(o.momentum)] if o.momentum else []
  elif o.name == "adam":
    core = [optax.scale_by_adam()]
  else:
    raise ValueError(f"Unknown optimizer.name {o.name!r}: use one of {', '.join(OPTIMIZERS)}.")
  chain = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip else []
  chain += [l2] if l2 else []
  chain += core
  chain += [decoupled] if decoupled else []
  chain += [optax.scale_by_learning_rate(lr)]
  chain += [renormalize_filters(o.filter_radius)] if o.filter_radius else []
  return optax.chain(*chain), lr
