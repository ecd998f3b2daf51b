"""GoogLeNet with and without its two auxiliary classifiers (Szegedy et al. 2014 §5: a 0.5 % effect).

  python -m launch.sweep launch/sweeps/aux.py --workdir=runs/aux \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz
"""

from launch.sweep import product


def get_sweep():
  return product(config=["configs/googlenet.py:googlenet"], **{"model.aux_heads": [True, False]})
