"""Decoding only a JPEG's crop (classic/data/jpeg_regions.py) gives the pixels of decoding all of it.

The tolerances: a decoded region equals PIL's decode of the whole image bit for bit; a training crop made
from a region differs from the same crop made from the whole image by at most 1 grey level (the
resampling weights are computed relative to another origin; a crop from a neighbouring draw differs by
tens of grey levels on average, tests/data/test_decoding.py).
"""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from classic.data import decoding, jpeg_regions, sources

pytestmark = pytest.mark.skipif(not jpeg_regions.available(),
                                reason="nvImageCodec's CPU decoder is not installed (it is on Linux and Windows)")


def _jpeg(image: np.ndarray, **options) -> bytes:
  out = io.BytesIO()
  Image.fromarray(image).save(out, "JPEG", **options)
  return out.getvalue()


@pytest.fixture(scope="module")
def photo():
  return load_sample_images().images[0]   # china.jpg, 427 x 640


ENCODINGS = {"4:2:0": dict(quality=92), "4:4:4": dict(quality=92, subsampling=0),
             "4:2:2": dict(quality=90, subsampling=1), "progressive": dict(quality=85, progressive=True)}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_region_has_the_pixels_of_the_whole_decode(photo, encoding):
  data = _jpeg(photo, **ENCODINGS[encoding])
  whole = sources.decode(data, "photo")
  for x0, y0, x1, y1 in [(0, 0, 640, 427), (1, 1, 100, 100), (13, 7, 517, 333), (300, 200, 640, 427),
                         (0, 0, 5, 5), (77, 0, 79, 427), (633, 420, 640, 427)]:
    region = jpeg_regions.region(data, x0, y0, x1, y1)
    assert region.shape == (y1 - y0, x1 - x0, 3) and region.dtype == np.uint8
    np.testing.assert_array_equal(region, whole[y0:y1, x0:x1])


@pytest.fixture
def without_regions(monkeypatch):
  """Runs a function with region decoding switched off (PIL decodes whole images)."""
  def run(fn, *args):
    with monkeypatch.context() as m:
      m.setattr(jpeg_regions, "available", lambda: False)
      return fn(*args)
  return run


@pytest.fixture
def region_calls(monkeypatch):
  calls = []
  decode = jpeg_regions.region
  monkeypatch.setattr(jpeg_regions, "region", lambda *a: calls.append(a[1:]) or decode(*a))
  return calls


@pytest.mark.parametrize("encoding", ["4:2:0", "progressive"])
def test_training_crops_from_regions_equal_crops_from_whole_images(photo, encoding, without_regions,
                                                                    region_calls):
  data = _jpeg(photo, **ENCODINGS[encoding])
  for seed in range(8):
    for fn, args in [(decoding.inception_crop, (224,)), (decoding.scale_augment, (224, (256, 480)))]:
      ours = fn(data, np.random.default_rng(seed), *args)
      whole = without_regions(fn, data, np.random.default_rng(seed), *args)
      assert ours.shape == whole.shape == (224, 224, 3)
      assert np.abs(ours.astype(int) - whole).max() <= 1
  ours, whole = decoding.center_crop(data, 224, 256), without_regions(decoding.center_crop, data, 224, 256)
  assert np.abs(ours.astype(int) - whole).max() <= 1
  assert len(region_calls) >= 15      # the crops above went through region decoding (some cover the image)
  assert all(x1 - x0 < 640 or y1 - y0 < 427 for x0, y0, x1, y1 in region_calls)


def test_the_whole_image_is_decoded_where_a_reduced_scale_is_cheaper(photo, region_calls):
  large = _jpeg(np.asarray(Image.fromarray(photo).resize((2560, 1708), Image.BICUBIC)), quality=90)
  decoding.center_crop(large, 224, 256)            # the whole image at 1/4 scale beats a full-scale window
  assert region_calls == []
  decoding.inception_crop(large, np.random.default_rng(3), 224)
  image = decoding._open(large)
  small = decoding._window(image, (1000, 800, 1100, 900), (224, 224), (2560 * 2.24, 1708 * 2.24))
  assert small == (998, 798, 1102, 902)           # a small crop: only its window (and the filter's margin)


def test_greyscale_and_cmyk_jpegs_go_through_pil(region_calls):
  grey = (np.arange(300 * 400) % 251).astype(np.uint8).reshape(300, 400)
  assert decoding.inception_crop(_jpeg(grey), np.random.default_rng(0), 64).shape == (64, 64, 1)
  out = io.BytesIO()
  Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).convert("CMYK").save(out, "JPEG")
  assert decoding.inception_crop(out.getvalue(), np.random.default_rng(0), 64).shape == (64, 64, 3)
  assert region_calls == []


def test_a_truncated_jpeg_is_a_decode_error_naming_the_region(photo):
  data = _jpeg(photo, quality=92)
  cut = data[:len(data) // 3]                      # the header is intact; the lower rows are missing
  assert jpeg_regions.region(cut, 0, 300, 100, 400) is None
  with pytest.raises(decoding.DecodeError, match=r"cannot decode the region .* \(corrupt or truncated data\)"):
    decoding.scale_augment(cut, np.random.default_rng(0), 224, (256, 256))


def test_config_jpeg_regions_false_decodes_whole_images(photo, region_calls):
  from classic.data import pipeline
  from classic.train import defaults
  config = defaults.defaults()
  config.augment, config.image_size, config.jpeg_regions = "inception", 64, False
  source = sources.Encoded(records=[(_jpeg(photo, quality=90), 0)], num_classes=1, name="photo")
  maker = pipeline.ExampleMaker(source, config, 0, 1)
  assert maker._augmented(0, np.random.default_rng(0))[0].shape == (64, 64, 3)
  assert region_calls == []
  maker.regions = True
  maker._augmented(0, np.random.default_rng(0))
  assert len(region_calls) == 1


def test_threads_that_ask_while_the_decoder_loads_wait_for_it(monkeypatch):
  """The first use from two threads at once (the eval pipeline's thread pool): the second thread waits
  for the load and decodes windows too, instead of taking PIL's path (a grey level apart)."""
  import threading
  import time
  loaded, started = jpeg_regions._nvimgcodec(), threading.Event()

  def slow_load():
    started.set()
    time.sleep(0.3)
    return loaded

  monkeypatch.setattr(jpeg_regions, "_module", None)
  monkeypatch.setattr(jpeg_regions, "_load", slow_load)
  first = threading.Thread(target=jpeg_regions.available)
  first.start()
  started.wait()
  assert jpeg_regions.available()        # asked while the first thread is still loading
  first.join()
