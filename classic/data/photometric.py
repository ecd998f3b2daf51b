"""Photometric distortions of the Inception recipes: random brightness, saturation, hue and contrast.

GoogLeNet (Szegedy et al. 2014 §6) trained with "the photometric distortions of Andrew Howard"
(Howard 2013: random changes of contrast, brightness and colour); BN-Inception (Ioffe & Szegedy
2015 §4.2.1) "reduced" them. The form is the one Inception's public preprocessing
(TF-slim's `inception_preprocessing.distort_color`) gives them, per image on the [0, 1] scale:
brightness + d with d ~ U[-32/255, 32/255], saturation x s and contrast x c with s, c ~ U[0.5, 1.5]
(contrast around the image's per-channel mean), hue + h with h ~ U[-0.2, 0.2] (a turn of the colour
circle is 1), in one of four orders chosen per image, then clipped to [0, 1] (the saturation and hue
operations, which go through HSV, see their input clipped to [0, 1]).

`strength` scales every range (1: the above; 0.5: half of each, `config.photometric`). `draw` makes
the per-image parameters on the host (from the step's seed, like PCA lighting), `distort` applies
them on device inside the train step.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

BRIGHTNESS, SATURATION, HUE, CONTRAST = 32.0 / 255.0, 0.5, 0.2, 0.5
# TF-slim's four orders of (brightness, saturation, hue, contrast), by operation index.
ORDERS = ((0, 1, 2, 3), (1, 0, 3, 2), (3, 2, 0, 1), (2, 1, 3, 0))


def draw(rng: np.random.Generator, n: int, strength: float) -> np.ndarray:
  """(n, 5) float32: brightness delta, saturation factor, hue delta, contrast factor, order index."""
  return np.stack([rng.uniform(-BRIGHTNESS, BRIGHTNESS, n) * strength,
                   1.0 + rng.uniform(-SATURATION, SATURATION, n) * strength,
                   rng.uniform(-HUE, HUE, n) * strength,
                   1.0 + rng.uniform(-CONTRAST, CONTRAST, n) * strength,
                   rng.integers(0, len(ORDERS), n)], axis=1).astype(np.float32)


def rgb_to_hsv(x):
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = jnp.max(x, -1)
  spread = v - jnp.min(x, -1)
  s = jnp.where(v > 0, spread / jnp.where(v > 0, v, 1.0), 0.0)
  safe = jnp.where(spread > 0, spread, 1.0)
  h = jnp.where(v == r, (g - b) / safe, jnp.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
  h = jnp.where(spread > 0, (h / 6.0) % 1.0, 0.0)
  return jnp.stack([h, s, v], -1)


def hsv_to_rgb(x):
  h, s, v = x[..., 0], x[..., 1], x[..., 2]
  k = (jnp.asarray([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
  return v[..., None] - v[..., None] * s[..., None] * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _operations(x, p):
  """The four operations on images x (B, H, W, 3) in [0, 1] with per-image parameters p (B, 5)."""
  col = lambda i: p[:, i][:, None, None, None]

  def brightness(y):
    return y + col(0)

  def saturation(y):
    hsv = rgb_to_hsv(y)
    return hsv_to_rgb(hsv.at[..., 1].set(jnp.clip(hsv[..., 1] * col(1)[..., 0], 0.0, 1.0)))

  def hue(y):
    hsv = rgb_to_hsv(y)
    return hsv_to_rgb(hsv.at[..., 0].set((hsv[..., 0] + col(2)[..., 0]) % 1.0))

  def contrast(y):
    mean = jnp.mean(y, axis=(1, 2), keepdims=True)
    return (y - mean) * col(3) + mean

  return (brightness, saturation, hue, contrast)


def distort(x, params):
  """Images x (B, H, W, 3) on the 0-255 scale, distorted per `params` from `draw`; float, 0-255."""
  if x.shape[-1] != 3:
    raise ValueError(f"photometric distortions need RGB images; these have {x.shape[-1]} channel(s): "
                     "set --config.photometric=0.")
  y0 = x / 255.0
  ops = _operations(y0, params)
  out = jnp.zeros_like(y0)
  for k, order in enumerate(ORDERS):
    y = y0
    for i in order:
      y = ops[i](jnp.clip(y, 0.0, 1.0)) if i in (1, 2) else ops[i](y)  # HSV of in-range colours
    out = jnp.where((params[:, 4] == k)[:, None, None, None], y, out)
  return jnp.clip(out, 0.0, 1.0) * 255.0
