"""Shortcut options A (zero-padded identity), B (projections where the shape changes), C (all
projections) of He et al. 2015 §4.1 / Table 3, on CIFAR ResNet-32; and ResNet v1 vs pre-activation v2
at equal depth, ResNet-110 (He et al. 2016 Table 2).

  python -m launch.sweep launch/sweeps/shortcuts.py --workdir=runs/shortcuts \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz
"""

from launch.sweep import product


def get_sweep():
  return (product(config=["configs/resnet.py:resnet32"], **{"model.shortcut": ["A", "B", "C"]})
          + product(config=["configs/resnet.py:resnet110", "configs/resnet.py:preact110"]))
