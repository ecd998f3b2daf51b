"""Weights of other zoos in classic modules: torchvision, timm and keras.applications.

  config, variables = from_torchvision("resnet50", torch.load("resnet50.pth"))
  config, variables = from_timm("inception_v4", safetensors.numpy.load_file("model.safetensors"))
  config, variables = from_keras(keras.applications.ResNet50(...))      # or a .keras/.h5 path
  logits = classic.models.build(config.model).apply(variables, x_nhwc, train=False)

`config` is the matching variant of configs/<family>.py with the fields that make the classic module
compute what the source computes (its deviations from the papers, each a named switch of the module)
and the source's preprocessing (config.mean/std on the 0-255 scale, config.image_size). A state dict
is any mapping of names to numpy arrays or torch tensors. Mismatched weights fail with
`ConversionError` naming every missing, extra or misshapen tensor. `python -m classic.convert`
writes a workdir that `classic.main --mode=eval` evaluates and `--config.init_from` fine-tunes from.
"""

from classic.interop.common import ConversionError


def from_torchvision(arch, state_dict, **kwargs):
  from classic.interop import torchvision
  return torchvision.from_torchvision(arch, state_dict, **kwargs)


def from_timm(arch, state_dict, **kwargs):
  from classic.interop import timm
  return timm.from_timm(arch, state_dict, **kwargs)


def from_keras(model_or_path, **kwargs):
  from classic.interop import keras
  return keras.from_keras(model_or_path, **kwargs)


__all__ = ["ConversionError", "from_torchvision", "from_timm", "from_keras"]
