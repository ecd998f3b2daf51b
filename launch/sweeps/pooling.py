"""Overlapping (3x3, stride 2) vs non-overlapping (2x2, stride 2) max pooling in AlexNet
(Krizhevsky et al. 2012 §3.4: overlapping pooling cut top-1 error by 0.4 %).

  python -m launch.sweep launch/sweeps/pooling.py --workdir=runs/pooling \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz
"""

from launch.sweep import product


def get_sweep():
  return product(config=["configs/alexnet.py:alexnet"], **{"model.overlap_pool": [True, False]})
