"""setup.prepare: a run made ready for its loop once, in order: the config checked once, a recipe moved
to its data set, the data checked, the program built, the workdir's config written."""

import json

import pytest

from classic.data.sources import DataError
from classic.train import setup, validate
from classic.train.loop import Trainer
from configs import common


def test_a_recipe_is_checked_once_then_moved_to_its_data_set(tmp_path, monkeypatch):
  calls = []
  check = validate.check
  monkeypatch.setattr(validate, "check", lambda *args, **kwargs: (calls.append(args[1]), check(*args, **kwargs))[1])
  c = common.load("configs/resnet.py:resnet20")
  c.dataset = "digits"                          # as --config.dataset=digits on the command line
  trainer = Trainer(c, str(tmp_path), explicit={"dataset"})
  assert calls == [{"dataset"}]                 # once, with the command line's fields
  assert trainer.config.channels == 1 and "channels" in trainer.config.derived_from_data
  assert trainer.start_step == 0 and trainer.params == 269_722 - 2 * 16 * 3 * 3   # the stem takes 1 channel
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["dataset"] == "digits" and saved["channels"] == 1


def test_the_data_checks_say_what_to_set(tmp_path):
  c = common.load("configs/lenet.py:digits")
  c.mean = (0.0, 0.0)
  with pytest.raises(DataError, match=r"config.mean has 2 values for the 1-channel images of digits/train: "
                                      r"give 1 values, e.g. --config.mean='\(0.0,\)'"):
    setup.prepare(c, str(tmp_path))
  assert not (tmp_path / "config.json").exists()   # a refused start writes nothing
