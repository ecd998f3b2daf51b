"""VGG (Simonyan & Zisserman 2015) configs.

  A, A_lrn, B, C, D, E        the Table 1 configurations
  vgg11, vgg13, vgg16, vgg19  the usual names of A, B, D, E
  <any of the above>_bn       the same with BatchNorm after every conv (vgg16_bn, D_bn, ...)

Recipe (§3.1): SGD, batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 on the first two FC
layers, lr 0.01 divided by 10 when the validation accuracy stopped improving, three times, 370k
iterations (74 epochs). The decreases are fixed here at epochs 20, 40 and 60 (5,005 steps per epoch).
Training scale S=256 (single-scale, the first setting of Table 3): the shorter side rescaled to 256,
random 224 crops, flips and PCA colour noise as AlexNet; `--config.scale_range=(256,512)` gives the
paper's scale jittering. Evaluation is a 224 centre crop by default; §3.2's dense evaluation is
`--config.eval_crop=dense --config.model.fully_conv=True`: the FC layers as convolutions over the
image rescaled to Q (`--config.eval_resize`, or several Q with `--config.eval_scales='(256, 384, 512)'`,
Table 4's multi-scale test for S in [256, 512]), the class score map averaged over space, and the
softmax averaged over the scales and the mirror images. Named deviations: inputs are divided by a
per-channel std as well as mean-subtracted (the paper subtracts the mean RGB only); a dense view is
the image's central Q x Q square (its longer side centre-cropped to Q, so that a batch has one shape
per scale), not the whole rescaled image; and Table 5's combination of 150 crops with dense
evaluation is not implemented (`ten_crop` and `dense` are separate settings).
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The learning rate is divided by 10 at fixed epochs 20, 40 and 60; the paper did so when the "
    "validation accuracy stopped improving (§3.1).",
    "Inputs are divided by a per-channel std as well as mean-subtracted; the paper subtracts the mean "
    "RGB only (§2.1).",
    "A dense-evaluation view is the image's central QxQ square (so that a batch has one shape per "
    "scale), not the whole rescaled image (§3.2).",
    "Table 5's combination of 150 multi-crops with dense evaluation is not implemented: `ten_crop` and "
    "`dense` are separate settings.",
)

# Table 1's columns, by the model variants' names (C has no depth name of its own: vgg16_1x1).
COLUMNS = {"A": "vgg11", "A_lrn": "vgg11_lrn", "B": "vgg13", "C": "vgg16_1x1", "D": "vgg16", "E": "vgg19"}


def vgg(model_variant: str):
  c = common.imagenet(model_variant, batch_size=256, train_steps=370_000,
                      eval_every_epochs=5, scale_range=(256, 256), pca_lighting=0.1)
  c.optimizer.weight_decay = 5e-4
  common.steps_schedule(c, 0.01, epochs=(20, 40, 60))
  return c


_NAMES = list(COLUMNS) + ["vgg11", "vgg13", "vgg16", "vgg19"]
VARIANTS = {name: functools.partial(vgg, COLUMNS.get(name, name)) for name in _NAMES}
VARIANTS.update({f"{name}_bn": functools.partial(vgg, f"{COLUMNS.get(name, name)}_bn") for name in _NAMES})


def get_config(arg=None):
  return common.select(arg, VARIANTS, "D", "vgg")
