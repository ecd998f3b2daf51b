"""Factorising large filters: GoogLeNet's 5x5 branch as one 5x5, two stacked 3x3 (Inception v2) or
1x5 + 5x1 (Inception v3 §3), and VGG's stack of two 3x3 vs one 5x5 (Simonyan & Zisserman §2.3).

  python -m launch.sweep launch/sweeps/factorization.py --workdir=runs/factorization \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz
"""

from launch.sweep import product


def get_sweep():
  return (product(config=["configs/googlenet.py:googlenet"], **{"model.factorization": ["5x5", "3x3x2", "1xn"]})
          + product(config=["configs/vgg.py:B"], **{"model.conv5x5": [False, True]}))
