"""GoogLeNet (Szegedy et al. 2014) configs.

  googlenet              the paper's model (Table 1, real 5x5 branches, LRN, two aux heads)
  googlenet_noaux        without the auxiliary classifiers
  googlenet_3x3x2        5x5 branches as two stacked 3x3 convolutions (Inception v2 style)
  googlenet_1xn          5x5 branches as 1x5 + 5x1 (Inception v3 style)
  googlenet_torchvision  torchvision's variant: BN after every conv, no LRN, 3x3 in the "5x5" branch,
                         ceil-mode max pools, BN epsilon 1e-3, a 2x2 pool before 5a

Recipe (§6): SGD with momentum 0.9; the learning rate decreased by 4% every 8 epochs; Polyak averaging
for the final model; "inception" augmentation (crops of 8%-100% of the area, aspect ratio in [3/4, 4/3],
flips, photometric distortions of brightness, saturation, hue and contrast in the form of Inception's
public preprocessing, `photometric=1`); aux losses weighted 0.3 (§5). The paper gives no initial learning rate, batch,
weight decay or length: those come from the Caffe reference solver (bvlc_googlenet: lr 0.01 at batch 32,
x0.96 every 320,000 iterations = 8 epochs, weight decay 2e-4 not on biases, 10M iterations = 250
epochs, Caffe mean subtraction without scaling). Here the batch is 256 and the learning rate is scaled
linearly (0.01 x 256/32 = 0.08), so 8 epochs are 40,040 steps. The EMA decay is our choice.
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "The paper gives no initial learning rate, batch, weight decay or length: they come from the Caffe "
    "reference solver (bvlc_googlenet), at batch 256 with the learning rate scaled linearly (0.08); the "
    "EMA decay (0.9999) of the Polyak average is this codebase's choice.",
    "The photometric distortions are TF-slim's distort_color ranges: the paper (after Howard 2013) gives "
    "the idea, not the constants.",
    "Crops are always resized bilinearly; the paper cites Howard's tricks, among them a random choice "
    "of the resize interpolation (bilinear, area, nearest, cubic), which is not implemented.",
    "Evaluation is a single centre crop by default; the paper's 144-crop test is "
    "`--config.eval_crop=multi_crop_144`.",
)

CAFFE_MEAN = (123.0, 117.0, 104.0)  # bvlc_googlenet's mean_value (104, 117, 123) in BGR


def googlenet(model_variant: str):
  c = common.imagenet(model_variant, batch_size=256, train_epochs=250,
                      eval_every_epochs=10, augment="inception", mean=CAFFE_MEAN,
                      std=(1.0, 1.0, 1.0))
  c.optimizer.lr = 0.08
  c.optimizer.weight_decay = 2e-4
  c.optimizer.decay_params = "kernels"
  c.optimizer.schedule = "exponential"
  c.optimizer.decay_every_epochs = 8
  c.optimizer.factor = 0.96
  c.aux_weight = 0.3
  c.ema_decay = 0.9999
  c.photometric = 1.0   # §6: Howard's photometric distortions (classic.data.photometric)
  return c


VARIANTS = {name: functools.partial(googlenet, name) for name in
            ("googlenet", "googlenet_noaux", "googlenet_3x3x2", "googlenet_1xn", "googlenet_torchvision")}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "googlenet", "googlenet")
