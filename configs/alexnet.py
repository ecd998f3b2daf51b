"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) configs.

  alexnet         the paper's two-tower net (Fig. 2): 227 input, groups=2, LRN, overlapping pooling
  alexnet_1tower  the single-tower layout of Krizhevsky 2014 ("One weird trick") as torchvision has
                  it: widths 64-192-384-256-256, no LRN, 224 input with conv1 padded by 2, adaptive
                  average pool to 6x6

Recipe (§5, §4.1): SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 when the
validation error stopped improving, three times, ~90 epochs ("roughly 90 cycles"). The plateaus are
fixed here at epochs 30, 60 and 80 (10,009 steps per epoch at batch 128). Images rescaled to 256,
random crops and flips (`augment='imagenet'` with scale_range (256, 256)), PCA colour noise of
std 0.1 (§4.1). The paper tested on 10 crops of the central 256x256 patch
(`--config.eval_crop=ten_crop`); centre crop by default. Named deviations: DEVIATIONS below.
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The learning rate is divided by 10 at fixed epochs 30, 60 and 80; the paper did so when the "
    "validation error stopped improving (§5).",
    "Inputs are normalised by ImageNet's per-channel mean and std; the paper subtracts the mean image "
    "only (§2).",
    "Training crops are random 224 crops of the whole image rescaled to a shorter side of 256; the paper "
    "takes them from its central 256x256 patch (§2). The 10-crop test takes the central patch, as the "
    "paper does (§4.1).",
)



def alexnet(model_variant: str):
  c = common.imagenet(model_variant, batch_size=128,
                      train_epochs=90, eval_every_epochs=5,
                      scale_range=(256, 256), pca_lighting=0.1)
  c.optimizer.weight_decay = 5e-4
  common.steps_schedule(c, 0.01, epochs=(30, 60, 80))
  return c


VARIANTS = {
    "alexnet": functools.partial(alexnet, "alexnet"),
    "alexnet_1tower": functools.partial(alexnet, "alexnet_1tower"),
}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "alexnet", "alexnet")
