"""Plain vs residual nets at increasing depth: He et al. 2015 Fig. 6 / Table 6 (CIFAR-10: 20, 32, 44,
56, 110 layers) and Fig. 4 / Table 2 (ImageNet: 18, 34 layers; the residual twins resnet18_a/34_a use
option-A shortcuts, so each pair has equal parameter counts). The deeper plain net trains *worse*
(higher training error), the residual one better.

  python -m launch.sweep launch/sweeps/degradation.py --workdir=runs/degradation \
      --only='(20|32|44|56|110)$' --set=dataset=../shared/data/cifar10-jpg.tar.gz   # CIFAR, shared JPEGs

Table 6 reports ResNet-110 as mean ± std of 5 runs: `--set=data_on_device=True --set=replicas=5` trains
five seeds of each net in one program on an accelerator (intervals then multiples of steps_per_call),
and the launcher and `classic.report` give each net's test error as mean ± std over its seeds.
"""

from launch.sweep import product


def get_sweep():
  cifar = product(config=[f"configs/resnet.py:{kind}{depth}" for depth in (20, 32, 44, 56, 110)
                          for kind in ("plain", "resnet")])
  # Table 2 / Fig. 4 compare plain-18/34 with option-A residual twins of the same parameter count.
  imagenet = product(config=[f"configs/resnet.py:{name}" for depth in (18, 34)
                             for name in (f"plain{depth}", f"resnet{depth}_a")])
  return cifar + imagenet
