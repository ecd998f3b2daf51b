"""Inception's photometric distortions (classic.data.photometric): the parameters' distributions, each
operation's effect, and the recipes that use them."""

import colorsys

import numpy as np
import pytest

from classic.data import photometric


def params(n=1, brightness=0.0, saturation=1.0, hue=0.0, contrast=1.0, order=0):
  return np.tile(np.float32([brightness, saturation, hue, contrast, order]), (n, 1))


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_drawn_parameters_follow_the_ranges_of_inceptions_preprocessing(strength):
  p = photometric.draw(np.random.default_rng(0), 40_000, strength)
  brightness, saturation, hue, contrast, order = p.T
  for values, centre, half in ((brightness, 0.0, 32 / 255), (saturation, 1.0, 0.5), (hue, 0.0, 0.2),
                               (contrast, 1.0, 0.5)):
    half *= strength
    assert values.min() >= centre - half and values.max() <= centre + half
    assert abs(values.mean() - centre) < 0.02 * half
    np.testing.assert_allclose(values.std(), 2 * half / np.sqrt(12), rtol=0.02)  # uniform
  np.testing.assert_allclose(np.bincount(order.astype(int)) / len(order), 0.25, atol=0.01)


def test_hsv_round_trip_and_values_match_colorsys():
  rgb = np.random.default_rng(1).uniform(0, 1, (500, 3)).astype(np.float32)
  hsv = np.asarray(photometric.rgb_to_hsv(rgb))
  np.testing.assert_allclose(hsv, [colorsys.rgb_to_hsv(*c) for c in rgb], atol=1e-5)
  np.testing.assert_allclose(np.asarray(photometric.hsv_to_rgb(hsv)), rgb, atol=1e-5)


def test_each_operation_does_what_it_says():
  image = np.random.default_rng(2).uniform(0, 255, (1, 6, 5, 3)).astype(np.float32)
  same = np.asarray(photometric.distort(image, params()))
  np.testing.assert_allclose(same, image, atol=1e-3)  # the identity parameters change nothing
  brighter = np.asarray(photometric.distort(image, params(brightness=0.1)))
  np.testing.assert_allclose(brighter, np.clip(image + 25.5, 0, 255), atol=1e-3)
  grey = np.asarray(photometric.distort(image, params(saturation=0.0)))
  np.testing.assert_allclose(grey, np.repeat(image.max(-1, keepdims=True), 3, -1), atol=1e-3)  # V kept
  flat = np.asarray(photometric.distort(image, params(contrast=0.0)))
  np.testing.assert_allclose(flat, np.broadcast_to(image.mean((1, 2), keepdims=True), image.shape), atol=1e-3)
  red = np.zeros((1, 1, 1, 3), np.float32)
  red[..., 0] = 255
  np.testing.assert_allclose(np.asarray(photometric.distort(red, params(hue=1 / 3))).ravel(), [0, 255, 0],
                             atol=1e-3)  # a third of the colour circle: red -> green


def test_orders_differ_and_grey_images_are_refused():
  image = np.random.default_rng(3).uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
  outs = [np.asarray(photometric.distort(image, params(brightness=0.2, saturation=1.4, hue=0.1,
                                                       contrast=1.4, order=k))) for k in range(4)]
  assert all(np.abs(outs[0] - o).max() > 1 for o in outs[1:])
  with pytest.raises(ValueError, match="need RGB images"):
    photometric.distort(image[..., :1], params())


def test_the_inception_recipes_use_them():
  from configs import googlenet, inception_v2, resnet
  assert googlenet.get_config("googlenet").photometric == 1.0
  assert inception_v2.get_config("inception_v2").photometric == 0.5
  assert resnet.get_config("resnet50").photometric == 0.0
