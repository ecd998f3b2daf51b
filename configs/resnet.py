"""ResNet v1, plain nets (He et al. 2015) and pre-activation ResNet v2 (He et al. 2016) configs.

ImageNet (§3.4): resnet18/34/50/101/152 (option B, Table 3), plain18/34 and their option-A twins
resnet18_a/34_a (Table 2, Fig. 4: the same parameter count as the plain nets); batch 256, SGD momentum 0.9, lr 0.1, 600k
iterations, weight decay 1e-4, scale augmentation [256, 480] + 224 crop + flip + PCA colour noise,
option-B shortcuts. Two named deviations: the paper divides the learning rate by 10 "when the error
plateaus", here at fixed epochs 30, 60 and 90; and it reports 10-crop testing (Table 3) and
fully-convolutional multi-scale testing (Table 4), while evaluation here is a single centre crop by
default (`--config.eval_crop=ten_crop` for the 10 crops). Inputs are normalised by ImageNet's per-
channel mean and std (fb.resnet.torch's practice); the paper's Caffe models subtract the mean only.
preact18 ... preact200 (He et al. 2016, "Identity mappings", and the authors' fb.resnet.torch): the
same recipe with the learning rate divided by 10 at epochs 30 and 60, 90 epochs in all, evaluated on
the 320x320 centre crop of images rescaled to 320 (Table 5; `--config.eval_image_size=224
--config.eval_resize=256` for the 224 crop).

CIFAR-10 (§4.2): resnet20/32/44/56/110/1202, plain20 ... plain110, preact110/164/1001; batch 128,
lr 0.1 divided by 10 at 32k and 48k, stop at 64k, weight decay 1e-4, momentum 0.9, pad-4 crop + flip,
option-A shortcuts (the pre-activation nets use projections, option B, as in He et al. 2016).
ResNet-110 (and 1202) start at lr 0.01 for 400 iterations, as §4.2 describes.
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "ImageNet: the learning rate is divided by 10 at fixed epochs 30, 60 and 90; the paper did so "
    "\"when the error plateaus\" (§3.4).",
    "ImageNet: evaluation is a single centre crop by default (`--config.eval_crop=ten_crop` gives Table "
    "3's 10 crops); Table 4's fully-convolutional multi-scale test is not implemented for ResNets.",
    "ImageNet: inputs are normalised by the per-channel mean and std (fb.resnet.torch's practice); the "
    "paper's Caffe models subtract the mean only.",
)

IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)


def imagenet(model_variant: str):
  c = common.imagenet(model_variant, batch_size=256, train_steps=600_000,
                      eval_every_epochs=10, pca_lighting=0.1)
  common.steps_schedule(c, 0.1, epochs=(30, 60, 90))
  if c.model.preact:  # He et al. 2016 / fb.resnet.torch: /10 every 30 epochs, 90 epochs
    c.train_epochs = 90
    common.steps_schedule(c, 0.1, epochs=(30, 60))
    c.eval_image_size = c.eval_resize = 320   # Table 5's 320x320 single-crop test of a 224-trained net
  return c


def cifar(model_variant: str):
  c = common.cifar10(model_variant, train_steps=64_000)
  if c.model.depth >= 110:
    c.optimizer.lr = 0.01
    c.optimizer.schedule = "steps"
    c.optimizer.boundaries = (400, 32_000, 48_000)
    c.optimizer.scales = (10.0, 0.1, 0.1)
  else:
    common.steps_schedule(c, 0.1, [32_000, 48_000])
  return c


VARIANTS = {}
for _name in [f"{kind}{d}" for kind, depths in (("resnet", IMAGENET_DEPTHS), ("plain", (18, 34)), ("resnet", ("18_a", "34_a")),
                                                 ("preact", (18, 34, 50, 101, 152, 200))) for d in depths]:
  VARIANTS[_name] = functools.partial(imagenet, _name)
for _name in [f"{kind}{d}" for kind, depths in (("resnet", CIFAR_DEPTHS), ("plain", (20, 32, 44, 56, 110)),
                                                 ("preact", (110, 164, 1001))) for d in depths]:
  VARIANTS[_name] = functools.partial(cifar, _name)


def get_config(arg=None):
  return common.select(arg, VARIANTS, "resnet20", "resnet")
