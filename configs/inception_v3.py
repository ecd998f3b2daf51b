"""Inception v3 (Szegedy et al. 2015, "Rethinking the Inception Architecture") configs.

  inception_v3         the paper's model (1x7 + 7x1 at 17x17, auxiliary classifier) and recipe
  inception_v3_noaux   without the auxiliary classifier
  inception_v3_nxn     full 7x7 convolutions at 17x17 (ablation of the asymmetric factorization)
  inception_v3_3x3     three stacked 3x3 convolutions for each 7x7 at 17x17 (ablation)

Recipe (§8): RMSProp with decay 0.9 and epsilon 1.0, learning rate 0.045 decayed x0.94 every two
epochs, gradient clipping at global norm 2.0, label smoothing 0.1 (§7), Polyak averaging of the weights
(0.9999: TF-slim's moving_average_decay), 299x299 area/aspect crops ("inception" augmentation), inputs
scaled to [-1, 1]. The paper trained 100 epochs on 50 replicas with batch 32 each; here the same 100
epochs at batch 256 without rescaling the learning rate, so two epochs are 10,010 steps. From TF-slim's
training script, which the paper does not state: RMSProp momentum 0.9, weight decay 4e-5 (kernels
only), aux loss weight 0.4. Evaluation: central 87.5% crop (resize to 342, crop 299).
Named deviations from the paper's text, all as TF-slim (and Keras, torchvision) build the net whose
weights they publish: the auxiliary classifier's FC layer is not batch-normalised (§7's "BN-auxiliary"
is), the stem is TF-slim's (Table 1's rows differ in the 73x73/71x71 convolutions), and the 35x35
grid has three Inception modules (mixed_5b-5d) as TF-slim has them.
"""

import functools

from configs import common

# Where this differs from the paper (docs/models.md lists them all: python -m classic.summary --deviations).
DEVIATIONS = (
    "Batch 256 for the paper's 100 epochs without rescaling the learning rate; the paper trained on 50 "
    "replicas of batch 32 (§8). RMSProp momentum 0.9, weight decay 4e-5 and the aux weight 0.4 are "
    "TF-slim's, not stated in the paper.",
    "The auxiliary classifier's FC layer is not batch-normalised (§7's \"BN-auxiliary\" is), the stem is "
    "TF-slim's (Table 1's 73x73/71x71 rows differ) and the 35x35 grid has three modules, as TF-slim, "
    "Keras and torchvision build the net whose weights they publish.",
)



def inception_v3(model_variant: str):
  c = common.inception_imagenet(model_variant)
  c.aux_weight = 0.4                 # TF-slim's auxiliary loss weight
  return c


VARIANTS = {name: functools.partial(inception_v3, name) for name in
            ("inception_v3", "inception_v3_noaux", "inception_v3_nxn", "inception_v3_3x3")}


def get_config(arg=None):
  return common.select(arg, VARIANTS, "inception_v3", "inception_v3")
