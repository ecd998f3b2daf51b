"""Encoded images streamed through grain worker processes: the same batches as in-process, sharded per
process, exact from any step, bad files named, a dead worker a sentence. Data: ImageNet-like JPEGs made
from scikit-learn's photos (launch/benchmarks/imagenet_like.py)."""

import os
import signal
import time
import types

import numpy as np
import psutil
import pytest

from classic.data import sources
from classic.data.pipeline import Pipeline
from configs import inception_v3, resnet
from launch.benchmarks import imagenet_like


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
  return imagenet_like.build(tmp_path_factory.mktemp("imagenet_like"), images=48, classes=4)


def recipe(folder, family=resnet, variant="resnet50", **overrides):
  c = family.get_config(variant)
  c.dataset, c.model.num_classes, c.in_memory, c.batch_size = str(folder), 4, False, 8
  for k, v in overrides.items():
    c[k] = v
  return c


def take(iterator, n):
  out = [next(iterator) for _ in range(n)]
  iterator.close()
  return out


@pytest.mark.parametrize("family, variant", [(resnet, "resnet50"), (inception_v3, "inception_v3")])
def test_workers_give_the_in_process_batches(jpeg_folder, family, variant):
  """resnet50: scale augmentation + PCA lighting; inception_v3: the Inception crop at 299."""
  c = recipe(jpeg_folder, family, variant, data_workers=2)
  pipe = Pipeline(c, train=True)
  assert pipe.workers == 2
  got = take(pipe.train_iter(3), 8)       # 8 steps of 8 cross the first epoch (48 images)
  assert [s for s, _ in got] == list(range(3, 11))
  for step, batch in got:
    expected = pipe.train_batch(step)     # in this process, threads
    assert batch.keys() == expected.keys()
    for k in batch:
      np.testing.assert_array_equal(batch[k], expected[k], err_msg=f"step {step} {k}")
  assert got[0][1]["image"].shape == (8, c.image_size, c.image_size, 3)


def test_two_processes_with_workers_reassemble_the_one_process_batch(jpeg_folder):
  c = recipe(jpeg_folder, data_workers=1)
  whole = take(Pipeline(c, train=True).train_iter(5), 3)
  halves = [take(Pipeline(c, train=True, process_index=p, process_count=2).train_iter(5), 3) for p in range(2)]
  for i, (step, batch) in enumerate(whole):
    for k in batch:
      np.testing.assert_array_equal(np.concatenate([h[i][1][k] for h in halves]), batch[k])


def test_an_epoch_visits_every_file_once(jpeg_folder):
  c = recipe(jpeg_folder, data_workers=0, augment="none", image_size=64)
  pipe = Pipeline(c, train=True)
  indices = np.concatenate([pipe._indices(s) for s in range(6)])
  assert sorted(indices) == list(range(48))
  labels = pipe.source.records.labels
  for s in range(6):   # the streamed example of (step, row) is the one at that stream position
    assert [pipe.maker.train(s, j)[1] for j in range(8)] == list(labels[pipe._indices(s)])


def test_eval_decodes_each_example_once_and_counts_all(jpeg_folder, monkeypatch):
  c = recipe(jpeg_folder, train_split="train", eval_split="train", eval_batch_size=20)
  pipe = Pipeline(c, train=False)
  reads = []
  real = pipe.source.records.__class__.__getitem__
  monkeypatch.setattr(pipe.source.records.__class__, "__getitem__", lambda self, i: reads.append(i) or real(self, i))
  masks = [pipe.eval_batch(b)["mask"] for b in range(pipe.num_eval_batches)]
  assert sum(m.sum() for m in masks) == 48 and len(reads) == 60   # 3 batches of 20, each row read once


@pytest.mark.parametrize("damage", ["header", "rows"])
def test_a_corrupt_jpeg_read_in_a_worker_is_named_or_skipped(jpeg_folder, tmp_path, damage):
  """header: not a JPEG past its first marker; rows: a whole header, the first tenth of the rows (read
  through libjpeg-turbo's window decoding, jpeg_regions.py, where available)."""
  import shutil
  folder = tmp_path / "corrupt"
  shutil.copytree(jpeg_folder, folder)
  bad = folder / "train" / "class_01" / "000005.jpg"
  data = bad.read_bytes()
  bad.write_bytes(b"\xff\xd8\xff\xe0 truncated" if damage == "header" else data[:len(data) // 10])
  c = recipe(folder, data_workers=1, batch_size=48)   # one step reads every file
  with pytest.raises(sources.DataError, match=r"Cannot decode image .*000005\.jpg.*corrupt_files=skip"):
    take(Pipeline(c, train=True).train_iter(0), 1)
  c.corrupt_files = "skip"
  (_, batch), = take(Pipeline(c, train=True).train_iter(0), 1)
  assert batch["image"].shape[0] == 48


def test_a_worker_that_dies_ends_with_a_sentence(jpeg_folder):
  pipe = Pipeline(recipe(jpeg_folder, data_workers=2), train=True)
  batches = pipe.train_iter(0)
  next(batches)
  workers = [p for p in psutil.Process().children(recursive=True) if "python" in p.name()]
  assert workers
  os.kill(workers[-1].pid, signal.SIGKILL)
  start = time.time()
  with pytest.raises(sources.DataError, match=r"data worker process died with exit code -9 .*Rerun to resume"):
    for _ in range(50):
      next(batches)
  assert time.time() - start < 60
  batches.close()


def test_listing_a_folder_labels_every_file_by_its_class(tmp_path):
  """Labels come from the class folder in one pass (no per-file search): checked on a tree of empty files."""
  for c in range(30):
    d = tmp_path / "train" / f"n{c:08d}"
    d.mkdir(parents=True)
    for i in range(40):
      (d / f"n{c:08d}_{i}.JPEG").touch()
  (tmp_path / "train" / ".DS_Store").touch()
  classes, paths, labels = sources.list_folder(str(tmp_path / "train"))
  assert len(classes) == 30 and len(paths) == len(labels) == 1200
  assert all(p.decode().split("/")[0] == classes[label] for p, label in zip(paths, labels))
  assert list(labels) == sorted(labels)


def test_a_run_waiting_for_data_warns_once(caplog):
  """Above 10 % of a logging window spent waiting for the next batch, the trainer says so, once."""
  import logging
  import types

  from classic.train.loop import Trainer
  trainer = Trainer.__new__(Trainer)   # only the warning's own state
  trainer._warned_input_bound, trainer.train_data = False, types.SimpleNamespace(workers=2)
  trainer.config = types.SimpleNamespace(in_memory=False)
  with caplog.at_level(logging.WARNING):
    trainer._warn_if_input_bound(0.05, 100)
    assert not caplog.records
    trainer._warn_if_input_bound(0.4, 200)
    trainer._warn_if_input_bound(0.6, 300)
  assert len(caplog.records) == 1
  message = caplog.records[0].getMessage()
  assert "waited for data 40% of the time up to step 200" in message and "2 worker processes" in message
  assert "--config.data_workers, now 2" in message and "--config.in_memory=True" in message


def test_the_input_advice_offers_only_what_the_run_does_not_do_already():
  from classic.train.loop import input_advice
  in_memory = input_advice(types.SimpleNamespace(in_memory=True), workers=0)
  assert "--config.in_memory=True" not in in_memory and "already in memory" in in_memory
  streamed = input_advice(types.SimpleNamespace(in_memory=False), workers=0)
  assert "--config.data_workers=-1" in streamed and "this process" in streamed
