"""ZFNet (Zeiler & Fergus 2013) config.

  zfnet   the Fig. 3 net: 224 input, conv1 7x7/2, LRN after the first two pools, dropout 0.5

Recipe (§3): SGD, batch 128, momentum 0.9, lr 0.01 annealed by hand when the validation error
plateaued (here divided by 10 at epochs 30 and 50), 70 epochs; images resized to 256, the central
256x256 region, and its 10 sub-crops of 224 (corners and centre, with and without a flip), on which the
paper trains (here random crops and flips: a named deviation) and which `--config.eval_crop=ten_crop`
tests on; after each update every conv filter whose RMS exceeds a radius of 1e-1 is renormalised to it
(`optimizer.filter_radius`). Named deviations: DEVIATIONS below.
"""

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "Training crops are random 224 crops and flips of the whole image rescaled to 256; the paper trains "
    "on the 10 fixed sub-crops (4 corners and the centre, with and without a flip) of the central 256x256 "
    "region (§3).",
    "Inputs are normalised by a per-channel mean and std; the paper subtracts the per-pixel mean only (§3).",
    "The learning rate is divided by 10 at fixed epochs 30 and 50; the paper annealed it by hand when "
    "the validation error plateaued (§3).",
    "Weight decay 5e-4, AlexNet's: the paper gives none.",
)



def zfnet():
  c = common.imagenet("zfnet", batch_size=128, train_epochs=70, eval_every_epochs=5, scale_range=(256, 256))
  c.optimizer.weight_decay = 5e-4
  c.optimizer.filter_radius = 0.1   # §3: conv filters whose RMS exceeds 1e-1 renormalised to it
  common.steps_schedule(c, 0.01, epochs=(30, 50))
  return c


VARIANTS = {"zfnet": zfnet}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "zfnet", "zfnet")
