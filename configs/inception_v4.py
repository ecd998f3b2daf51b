"""Inception-v4 / Inception-ResNet (Szegedy et al. 2016) configs on ImageNet.

  inception_v4                  Fig. 9, 42.7M parameters
  inception_resnet_v1           Fig. 15 with the Fig. 14 stem, blocks (5, 10, 5)
  inception_resnet_v2           Fig. 15 with the Fig. 3 stem, blocks (5, 10, 5) (`layout='paper'`)
  inception_resnet_v2_tf_slim   TF-slim / timm / Keras layout, blocks (10, 20, 10), 55.8M parameters

§4 gives the optimiser: RMSProp with decay 0.9 and epsilon 1.0, learning rate 0.045 decayed by 0.94
every two epochs, evaluation with a running average of the parameters (EMA decay 0.9999 here).
Gradient clipping at 2.0 and label smoothing 0.1 come from the Inception-v3 paper, whose recipe this
one continues. 299x299 area-crop ("inception") augmentation; inputs scaled to [-1, 1] as TF does.
Not in the paper, chosen here: batch 256 (the paper trained on 20 replicas and gives no batch size),
100 epochs, weight decay 4e-5 and RMSProp momentum 0.9 (TF-slim's values for these nets). A named
deviation: the weight decay here applies to every parameter (biases and BN included), while TF-slim,
whose values these are, and configs/inception_v3.py apply it to kernels only
(`--config.optimizer.decay_params=kernels` for TF-slim's).
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "Batch 256 and 100 epochs are this codebase's choice (the paper trained on 20 replicas and gives "
    "neither); weight decay 4e-5 and RMSProp momentum 0.9 are TF-slim's.",
    "The weight decay applies to every parameter (biases and BN included); TF-slim, whose value it is, "
    "applies it to kernels only (`--config.optimizer.decay_params=kernels`).",
)



def imagenet(model_variant: str):
  c = common.inception_imagenet(model_variant)
  c.optimizer.decay_params = "all"   # weight decay on every parameter here (TF-slim: kernels only)
  return c


VARIANTS = {name: functools.partial(imagenet, name) for name in
            ("inception_v4", "inception_resnet_v1", "inception_resnet_v2", "inception_resnet_v2_tf_slim")}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "inception_v4", "inception_v4")
