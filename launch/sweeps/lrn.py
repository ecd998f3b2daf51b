"""Local response normalisation on/off: AlexNet (Krizhevsky et al. 2012 §3.3: LRN cut top-1 error by
1.4 %) and VGG A vs A-LRN (Simonyan & Zisserman 2015 Table 3: LRN does not help).

  python -m launch.sweep launch/sweeps/lrn.py --workdir=runs/lrn \
      --set=dataset=../shared/data/cifar10-jpg.tar.gz
"""

from launch.sweep import product


def get_sweep():
  return (product(config=["configs/alexnet.py:alexnet"], **{"model.lrn": [True, False]})
          + product(config=["configs/vgg.py:A", "configs/vgg.py:A_lrn"]))
