"""A tiny TFDS data set built here without TensorFlow (encoded PNG bytes, array_record files): the
first 140 of scikit-learn's 8x8 digits, 100 for 'train' and 40 for 'test', classes named digit0-9."""

import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

NAME = "tiny_digits_for_test"


class TinyDigitsForTest(tfds.core.GeneratorBasedBuilder):
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(8, 8, 1)),
        "label": tfds.features.ClassLabel(names=[f"digit{i}" for i in range(10)])}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(0, 100), "test": self._generate_examples(100, 140)}

  def _generate_examples(self, first, last):
    from sklearn.datasets import load_digits
    digits = load_digits()
    for i in range(first, last):
      png = io.BytesIO()
      Image.fromarray((digits.images[i] * 15).astype(np.uint8)).save(png, format="PNG")
      yield i, {"image": png.getvalue(), "label": int(digits.target[i])}


def prepare(data_dir) -> str:
  TinyDigitsForTest(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
  return NAME
