"""Network in Network (Lin, Chen & Yan 2014) configs.

  nin_cifar     the authors' CIFAR-10 net (3 mlpconv blocks, global average pooling), 32x32 input
  nin_imagenet  the authors' ImageNet net from their Caffe model (4 mlpconv blocks), 224 input

The block structure is data (`config.model.blocks`, see classic/models/nin.py), so a variant is an
edit of this file, not of the model.

Recipe. CIFAR-10 (§4.1-4.2): batch 128, SGD momentum 0.9, translation and flip augmentation
(`augment='cifar'`); dropout 0.5 after the first two blocks. §4.1: training "continues until the
accuracy on the training set stops improving, and then the learning rate is lowered by a scale of 10.
This procedure is repeated once such that the final learning rate is one percent of the initial
value": two divisions by 10. Named deviations: the paper gives neither the learning rate, the decay nor
the number of epochs, so the plateaus are fixed here (lr 0.01, divided by 10 at 80k and 100k of 120k
steps, weight decay 1e-4); and it used global contrast normalisation + ZCA whitening, here per-channel
mean/std normalisation.
ImageNet: the Caffe model's batch of 64 and 224 crops; the schedule (lr 0.01, weight decay 5e-4,
divided by 10 at epochs 30, 60, 80 of 90) follows AlexNet, whose setup the paper says it follows.
"""

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The paper gives neither the learning rate, the decay nor the length: lr 0.01 divided by 10 at 80k "
    "and 100k of 120k steps (its two drops happened when training accuracy stopped improving), weight "
    "decay 1e-4.",
    "Per-channel mean/std normalisation; the paper used global contrast normalisation and ZCA whitening "
    "on CIFAR-10 (§4.2), not available here.",
)



def nin_cifar():
  c = common.cifar10("nin_cifar", train_steps=120_000)
  common.steps_schedule(c, 0.01, [80_000, 100_000])   # §4.1: lowered by 10, "repeated once"
  return c


def nin_imagenet():
  c = common.imagenet("nin_imagenet", batch_size=64, train_epochs=90, eval_every_epochs=5, scale_range=(256, 256))
  c.optimizer.weight_decay = 5e-4
  common.steps_schedule(c, 0.01, epochs=(30, 60, 80))
  return c


VARIANTS = {"nin_cifar": nin_cifar, "nin_imagenet": nin_imagenet}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "nin_cifar", "nin")
