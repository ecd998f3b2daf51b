"""Schedules in epochs (classic.train.epochs): the papers' epochs in the recipes, steps from the data's
size and the batch, for the recipe's own data when loaded and for the data a run reads when it starts."""

import json

import pytest

from classic.train import epochs, setup
from configs import common


def test_imagenet_recipes_give_the_papers_epochs_in_steps_of_1281167_images():
  resnet50 = common.load("configs/resnet.py:resnet50")   # batch 256: 5,005 steps an epoch
  assert resnet50.optimizer.boundary_epochs == (30, 60, 90) and resnet50.optimizer.boundaries == (150150, 300300, 450450)
  assert resnet50.train_steps == 600_000 and resnet50.train_epochs == 0   # He et al. count 60e4 iterations
  preact = common.load("configs/resnet.py:preact50")
  assert preact.train_epochs == 90 and preact.train_steps == 450_450 and preact.eval_every == 50_050
  alexnet = common.load("configs/alexnet.py:alexnet")    # batch 128: 10,009 steps an epoch
  assert alexnet.train_steps == 90 * 10_009 and alexnet.optimizer.boundaries == (300_270, 600_540, 800_720)
  assert common.load("configs/inception_v2.py:inception_v2").optimizer.decay_every == 6673   # 8/6 epochs
  cifar = common.load("configs/resnet.py:resnet20")      # He et al.'s CIFAR iterations stay iterations
  assert cifar.train_steps == 64_000 and cifar.optimizer.boundaries == (32_000, 48_000) and not cifar.train_epochs


def test_a_run_counts_its_epochs_in_its_own_data_and_batch(tmp_path):
  c = common.load("configs/lenet.py:digits")
  c.train_epochs, c.eval_every_epochs, c.checkpoint_every_epochs = 3, 1, 1.5
  c.batch_size = 32                         # 1,437 training digits: 45 steps an epoch
  run = setup.prepare(c, str(tmp_path), explicit={"batch_size"})      # as --config.batch_size=32
  assert (run.config.train_steps, run.config.eval_every, run.config.checkpoint_every) == (135, 45, 68)
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["train_steps"] == 135 and saved["train_epochs"] == 3
  run.checkpointer.close()


def test_a_config_built_in_code_keeps_the_steps_it_holds(tmp_path):
  """Code that sets train_steps on an epoch recipe (a test's 2 steps) is not overruled by the epochs:
  only the command line's changes are resolved again (a workdir's config.json holds its steps)."""
  c = common.load("configs/lenet.py:digits")
  c.train_epochs, c.train_steps = 3, 7
  run = setup.prepare(c, str(tmp_path))
  assert run.config.train_steps == 7
  run.checkpointer.close()


def test_steps_on_the_command_line_win_over_the_recipes_epochs():
  c = common.load("configs/alexnet.py:alexnet")
  c.train_steps = 100
  assert epochs.prefer_explicit(c, {"train_steps"}) == ["train_epochs"]
  assert c.train_epochs == 0 and epochs.resolve(c, 50_000) == {"eval_every": 1955, "optimizer.boundaries": (11_730, 23_460, 31_280)}
  assert c.train_steps == 100
  with pytest.raises(ValueError, match="--config.train_steps and --config.train_epochs both set the same length"):
    epochs.prefer_explicit(c, {"train_steps", "train_epochs"})


def test_a_sweep_finds_a_moved_epoch_recipe_finished_at_the_steps_its_data_gave(tmp_path):
  from launch import sweep
  c = common.load("configs/alexnet.py:alexnet")
  c.dataset = "cifar10"
  old = json.loads(c.to_json_best_effort())
  old.update(train_steps=35_190, eval_every=1955)           # what the run resolved for 50,000 images
  old["optimizer"]["boundaries"] = [11_730, 23_460, 31_280]
  (tmp_path / "config.json").write_text(json.dumps(old))
  (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 35_190, "eval/top1": 0.5}) + "\n")
  assert sweep.state(tmp_path, c, {"dataset"}) == ("finished", "step 35190; test top-1 0.5000")
  (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 2000}) + "\n")
  assert sweep.state(tmp_path, c, {"dataset"}) == ("resume", "at step 2000 of 35190")
