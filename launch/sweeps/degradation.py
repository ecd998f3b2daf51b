"""Plain vs residual nets at increasing depth: He et al. 2015 Fig. 6 / Table 6 (CIFAR-10: 20, 32, 44,
56, 110 layers) and Fig. 4 / Table 2 (ImageNet: 18, 34 layers). The deeper plain net trains *worse*
(higher training error), the residual one better.

  python -m launch.sweep launch/sweeps/degradation.py --workdir=runs/degradation \
      --only='(20|32|44|56|110)$' --set=dataset=../shared/data/cifar10-jpg.tar.gz   # CIFAR, shared JPEGs
"""

from launch.sweep import product


def get_sweep():
  cifar = product(config=[f"configs/resnet.py:{kind}{depth}" for depth in (20, 32, 44, 56, 110)
                          for kind in ("plain", "resnet")])
  imagenet = product(config=[f"configs/resnet.py:{kind}{depth}" for depth in (18, 34)
                             for kind in ("plain", "resnet")])
  return cifar + imagenet
