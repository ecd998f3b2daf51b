"""Per-channel input statistics on the 0-255 scale, as the papers' and the source zoos' code used them.

The train and eval steps compute (x - mean) / std on device (classic.train.step); recipes and
converters pick one of these pairs.
"""

# ImageNet's channel statistics (torchvision's, and most papers' code).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
# Mean subtraction only (AlexNet/VGG/ResNet Caffe and Keras code; std 1).
CAFFE_MEAN = (123.68, 116.779, 103.939)   # RGB order of Caffe's BGR (103.939, 116.779, 123.68)
UNIT_STD = (1.0, 1.0, 1.0)
# The Inception nets' (TF) scaling to [-1, 1].
INCEPTION_MEAN, INCEPTION_STD = (127.5,) * 3, (127.5,) * 3
CIFAR_MEAN = (125.31, 122.95, 113.87)
CIFAR_STD = (62.99, 62.09, 66.70)

# (mean, std) pairs by source.
IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)
CAFFE = (CAFFE_MEAN, UNIT_STD)
INCEPTION = (INCEPTION_MEAN, INCEPTION_STD)
