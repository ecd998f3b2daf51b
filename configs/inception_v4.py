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
100 epochs, weight decay 4e-5 and RMSProp momentum 0.9 (TF-slim's defaults for these nets).
"""

from configs import common

STEPS_PER_EPOCH = 5005  # 1,281,167 / 256


def _imagenet(name: str):
  c = common.inception_imagenet(STEPS_PER_EPOCH)
  c.optimizer.decay_params = "all"   # weight decay on every parameter here (TF-slim: kernels only)
  c.model.name = name
  c.model.num_classes = 1000
  c.model.dropout_rate = 0.2     # keep probability 0.8
  c.model.bn_group_size = 0
  c.model.bn_epsilon = 1e-3
  c.model.remat = False
  return c


def inception_v4():
  c = _imagenet("inception_v4")
  c.model.layout = "paper"
  c.model.blocks = (4, 7, 3)
  c.model.reduction_a = (192, 224, 256, 384)
  return c


def inception_resnet_v1():
  c = _imagenet("inception_resnet_v1")
  c.model.blocks = (5, 10, 5)
  c.model.reduction_a = (192, 192, 256, 384)
  c.model.residual_scale = (0.17, 0.10, 0.20)
  return c


def inception_resnet_v2():
  c = _imagenet("inception_resnet_v2")
  c.model.layout = "paper"
  c.model.blocks = (5, 10, 5)
  c.model.reduction_a = (256, 256, 384, 384)
  c.model.residual_scale = (0.17, 0.10, 0.20)
  return c


def inception_resnet_v2_tf_slim():
  c = inception_resnet_v2()
  c.model.layout = "tf_slim"
  c.model.blocks = (10, 20, 10)
  return c


VARIANTS = {
    "inception_v4": inception_v4,
    "inception_resnet_v1": inception_resnet_v1,
    "inception_resnet_v2": inception_resnet_v2,
    "inception_resnet_v2_tf_slim": inception_resnet_v2_tf_slim,
}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "inception_v4", "inception_v4")
