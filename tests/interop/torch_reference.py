"""Reference PyTorch models with torchvision's and timm's exact module and parameter names.

torchvision and timm are not dependencies (torchvision from PyPI is a CUDA build of several GB), so
the architectures the converters read are written out here after those libraries' sources, with the
same submodule names, layer order and eval-mode computation: torchvision's ResNet (v1.5), VGG(-BN),
AlexNet, GoogLeNet and Inception3 (both with `transform_input`), timm's InceptionV4 and
InceptionResnetV2. `randomize` gives every BN non-trivial running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
  """Random BN statistics and affine parameters (fresh BNs are the identity), eval mode."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.running_mean.normal_(0.0, 0.2, generator=g)
        m.running_var.uniform_(0.5, 1.5, generator=g)
        if m.affine:
          m.weight.uniform_(0.5, 1.5, generator=g)
          m.bias.normal_(0.0, 0.2, generator=g)
      elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
        m.bias.normal_(0.0, 0.1, generator=g)
  return model.eval()


# ---- torchvision.models.resnet ----------------------------------------------------------------
class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, cin, width, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(width)
    self.downsample = downsample

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin, width, stride=1, downsample=None):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)   # v1.5: stride on the 3x3
    self.bn2 = nn.BatchNorm2d(width)
    self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(width * 4)
    self.downsample = downsample

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = F.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return F.relu(out + (x if self.downsample is None else self.downsample(x)))


RESNET_LAYERS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                 50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3)),
                 152: (Bottleneck, (3, 8, 36, 3))}


class ResNet(nn.Module):

  def __init__(self, depth=50, num_classes=1000):
    super().__init__()
    block, layers = RESNET_LAYERS[depth]
    self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = 64
    for i, n in enumerate(layers):
      width, stride = 64 * 2**i, 1 if i == 0 else 2
      blocks = []
      for b in range(n):
        down = None
        if b == 0 and (stride != 1 or cin != width * block.expansion):
          down = nn.Sequential(nn.Conv2d(cin, width * block.expansion, 1, stride, bias=False),
                               nn.BatchNorm2d(width * block.expansion))
        blocks.append(block(cin, width, stride if b == 0 else 1, down))
        cin = width * block.expansion
      setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
    for i in range(4):
      x = getattr(self, f"layer{i + 1}")(x)
    return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- torchvision.models.vgg / alexnet ---------------------------------------------------------
VGG_CFGS = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
            16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
            19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512,
                 512, 512, 512, "M"]}


class VGG(nn.Module):

  def __init__(self, depth=16, batch_norm=False, num_classes=1000):
    super().__init__()
    layers, cin = [], 3
    for v in VGG_CFGS[depth]:
      if v == "M":
        layers.append(nn.MaxPool2d(2, 2))
      else:
        layers += [nn.Conv2d(cin, v, 3, padding=1)] + ([nn.BatchNorm2d(v)] if batch_norm else []) \
            + [nn.ReLU(True)]
        cin = v
    self.features = nn.Sequential(*layers)
    self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
    self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                                    nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                                    nn.Linear(4096, num_classes))

  def forward(self, x):
    return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class AlexNet(nn.Module):

  def __init__(self, num_classes=1000):
    super().__init__()
    self.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))
    self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
    self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(256 * 36, 4096), nn.ReLU(True),
                                    nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True),
                                    nn.Linear(4096, num_classes))

  def forward(self, x):
    return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- torchvision.models.googlenet / inception -------------------------------------------------
class BasicConv2d(nn.Module):

  def __init__(self, cin, cout, **kwargs):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _transform_input(x):
  chans = [x[:, i:i + 1] * (s / 0.5) + (m - 0.5) / 0.5
           for i, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))]
  return torch.cat(chans, 1)


class Inception(nn.Module):

  def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
    super().__init__()
    self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
    self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, kernel_size=1),
                                 BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
    self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, kernel_size=1),
                                 BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
    self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                 BasicConv2d(cin, pool_proj, kernel_size=1))

  def forward(self, x):
    return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):

  def __init__(self, cin, num_classes):
    super().__init__()
    self.conv = BasicConv2d(cin, 128, kernel_size=1)
    self.fc1 = nn.Linear(2048, 1024)
    self.fc2 = nn.Linear(1024, num_classes)

  def forward(self, x):
    x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
    return self.fc2(F.relu(self.fc1(x)))


class GoogLeNet(nn.Module):

  def __init__(self, num_classes=1000, aux_logits=True, transform_input=True):
    super().__init__()
    self.transform_input = transform_input
    self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
    self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
    self.conv2 = BasicConv2d(64, 64, kernel_size=1)
    self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
    self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
    self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
    self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
    self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
    self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
    self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
    self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
    self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
    self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
    self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
    self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
    self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
    if aux_logits:
      self.aux1 = InceptionAux(512, num_classes)
      self.aux2 = InceptionAux(528, num_classes)
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(1024, num_classes)

  def forward(self, x):  # eval mode: the aux heads do not run
    if self.transform_input:
      x = _transform_input(x)
    x = self.maxpool1(self.conv1(x))
    x = self.maxpool2(self.conv3(self.conv2(x)))
    x = self.maxpool3(self.inception3b(self.inception3a(x)))
    for n in "abcde":
      x = getattr(self, f"inception4{n}")(x)
    x = self.inception5b(self.inception5a(self.maxpool4(x)))
    return self.fc(torch.flatten(self.avgpool(x), 1))


class InceptionA(nn.Module):

  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
    self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
    self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

  def forward(self, x):
    return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      self.branch_pool(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionB(nn.Module):

  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    return torch.cat([self.branch3x3(x),
                      self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                      F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):

  def __init__(self, cin, c7):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    d = x
    for i in range(1, 6):
      d = getattr(self, f"branch7x7dbl_{i}")(d)
    return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionD(nn.Module):

  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b = x
    for i in range(1, 5):
      b = getattr(self, f"branch7x7x3_{i}")(b)
    return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):

  def __init__(self, cin):
    super().__init__()
    self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
    self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
    self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

  def forward(self, x):
    b = self.branch3x3_1(x)
    b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
    d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
    return torch.cat([self.branch1x1(x), b, d, self.branch_pool(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionAuxV3(nn.Module):

  def __init__(self, cin, num_classes):
    super().__init__()
    self.conv0 = BasicConv2d(cin, 128, kernel_size=1)
    self.conv1 = BasicConv2d(128, 768, kernel_size=5)
    self.fc = nn.Linear(768, num_classes)


class Inception3(nn.Module):

  def __init__(self, num_classes=1000, aux_logits=True, transform_input=True):
    super().__init__()
    self.transform_input = transform_input
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
    self.maxpool1 = nn.MaxPool2d(3, 2)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
    self.maxpool2 = nn.MaxPool2d(3, 2)
    self.Mixed_5b = InceptionA(192, 32)
    self.Mixed_5c = InceptionA(256, 64)
    self.Mixed_5d = InceptionA(288, 64)
    self.Mixed_6a = InceptionB(288)
    self.Mixed_6b = InceptionC(768, 128)
    self.Mixed_6c = InceptionC(768, 160)
    self.Mixed_6d = InceptionC(768, 160)
    self.Mixed_6e = InceptionC(768, 192)
    self.AuxLogits = InceptionAuxV3(768, num_classes) if aux_logits else None
    self.Mixed_7a = InceptionD(768)
    self.Mixed_7b = InceptionE(1280)
    self.Mixed_7c = InceptionE(2048)
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.dropout = nn.Dropout(0.5)
    self.fc = nn.Linear(2048, num_classes)

  def forward(self, x):  # eval mode: the aux head does not run
    if self.transform_input:
      x = _transform_input(x)
    x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
    x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
    for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
      x = getattr(self, f"Mixed_{name}")(x)
    return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- timm: ConvNormAct(conv, bn), inception_v4, inception_resnet_v2 ---------------------------
class ConvNormAct(nn.Module):

  def __init__(self, cin, cout, kernel_size, stride=1, padding=0):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False)
    self.bn = nn.BatchNorm2d(cout, eps=1e-3)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _c(cin, cout, k, s=1, p=0):
  return ConvNormAct(cin, cout, k, s, p)


class Cat(nn.Module):
  """torch.cat of named branches (timm writes each module's forward out; the names are the same)."""

  def __init__(self, **branches):
    super().__init__()
    self.order = list(branches)
    for name, module in branches.items():
      setattr(self, name, module)

  def forward(self, x):
    return torch.cat([getattr(self, n)(x) for n in self.order], 1)


def _pool_avg():
  return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


def _seq(*m):
  return nn.Sequential(*m)


class Fork(nn.Module):  # the output of `first`, fed to a and b, concatenated (timm Inception-C)

  def __init__(self, a, b):
    super().__init__()
    self.a, self.b = a, b

  def forward(self, x):
    return torch.cat([self.a(x), self.b(x)], 1)


class InceptionCV4(nn.Module):

  def __init__(self):
    super().__init__()
    self.branch0 = _c(1536, 256, 1)
    self.branch1_0 = _c(1536, 384, 1)
    self.branch1_1a = _c(384, 256, (1, 3), 1, (0, 1))
    self.branch1_1b = _c(384, 256, (3, 1), 1, (1, 0))
    self.branch2_0 = _c(1536, 384, 1)
    self.branch2_1 = _c(384, 448, (3, 1), 1, (1, 0))
    self.branch2_2 = _c(448, 512, (1, 3), 1, (0, 1))
    self.branch2_3a = _c(512, 256, (1, 3), 1, (0, 1))
    self.branch2_3b = _c(512, 256, (3, 1), 1, (1, 0))
    self.branch3 = _seq(_pool_avg(), _c(1536, 256, 1))

  def forward(self, x):
    x1 = self.branch1_0(x)
    x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
    return torch.cat([self.branch0(x), self.branch1_1a(x1), self.branch1_1b(x1),
                      self.branch2_3a(x2), self.branch2_3b(x2), self.branch3(x)], 1)


class InceptionV4(nn.Module):

  def __init__(self, num_classes=1000):
    super().__init__()
    mp = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
    a = lambda: Cat(branch0=_c(384, 96, 1), branch1=_seq(_c(384, 64, 1), _c(64, 96, 3, 1, 1)),  # noqa: E731
                    branch2=_seq(_c(384, 64, 1), _c(64, 96, 3, 1, 1), _c(96, 96, 3, 1, 1)),
                    branch3=_seq(_pool_avg(), _c(384, 96, 1)))
    b = lambda: Cat(  # noqa: E731
        branch0=_c(1024, 384, 1),
        branch1=_seq(_c(1024, 192, 1), _c(192, 224, (1, 7), 1, (0, 3)), _c(224, 256, (7, 1), 1, (3, 0))),
        branch2=_seq(_c(1024, 192, 1), _c(192, 192, (7, 1), 1, (3, 0)), _c(192, 224, (1, 7), 1, (0, 3)),
                     _c(224, 224, (7, 1), 1, (3, 0)), _c(224, 256, (1, 7), 1, (0, 3))),
        branch3=_seq(_pool_avg(), _c(1024, 128, 1)))
    features = [
        _c(3, 32, 3, 2), _c(32, 32, 3), _c(32, 64, 3, 1, 1),
        Cat(maxpool=mp(), conv=_c(64, 96, 3, 2)),                                        # Mixed3a
        Cat(branch0=_seq(_c(160, 64, 1), _c(64, 96, 3)),                                 # Mixed4a
            branch1=_seq(_c(160, 64, 1), _c(64, 64, (1, 7), 1, (0, 3)), _c(64, 64, (7, 1), 1, (3, 0)),
                         _c(64, 96, 3))),
        Cat(conv=_c(192, 192, 3, 2), maxpool=mp()),                                       # Mixed5a
        *[a() for _ in range(4)],
        Cat(branch0=_c(384, 384, 3, 2),                                                   # ReductionA
            branch1=_seq(_c(384, 192, 1), _c(192, 224, 3, 1, 1), _c(224, 256, 3, 2)), branch2=mp()),
        *[b() for _ in range(7)],
        Cat(branch0=_seq(_c(1024, 192, 1), _c(192, 192, 3, 2)),                           # ReductionB
            branch1=_seq(_c(1024, 256, 1), _c(256, 256, (1, 7), 1, (0, 3)),
                         _c(256, 320, (7, 1), 1, (3, 0)), _c(320, 320, 3, 2)), branch2=mp()),
        *[InceptionCV4() for _ in range(3)],
    ]
    self.features = nn.Sequential(*features)
    self.last_linear = nn.Linear(1536, num_classes)

  def forward(self, x):
    return self.last_linear(self.features(x).mean((2, 3)))


class Residual(nn.Module):  # timm Block35 / Block17 / Block8: branches, conv2d (bias), scale, relu

  def __init__(self, branches, cmid, cout, scale, relu=True):
    super().__init__()
    self.cat = branches
    self.conv2d = nn.Conv2d(cmid, cout, 1)
    self.scale, self.relu = scale, relu

  def forward(self, x):
    out = self.conv2d(self.cat(x)) * self.scale + x
    return F.relu(out) if self.relu else out


class InceptionResnetV2(nn.Module):

  def __init__(self, num_classes=1000):
    super().__init__()
    mp = lambda: nn.MaxPool2d(3, 2)  # noqa: E731
    self.conv2d_1a = _c(3, 32, 3, 2)
    self.conv2d_2a = _c(32, 32, 3)
    self.conv2d_2b = _c(32, 64, 3, 1, 1)
    self.maxpool_3a = mp()
    self.conv2d_3b = _c(64, 80, 1)
    self.conv2d_4a = _c(80, 192, 3)
    self.maxpool_5a = mp()
    self.mixed_5b = Cat(branch0=_c(192, 96, 1), branch1=_seq(_c(192, 48, 1), _c(48, 64, 5, 1, 2)),
                        branch2=_seq(_c(192, 64, 1), _c(64, 96, 3, 1, 1), _c(96, 96, 3, 1, 1)),
                        branch3=_seq(_pool_avg(), _c(192, 64, 1)))
    b35 = lambda: Residual(Cat(  # noqa: E731
        branch0=_c(320, 32, 1), branch1=_seq(_c(320, 32, 1), _c(32, 32, 3, 1, 1)),
        branch2=_seq(_c(320, 32, 1), _c(32, 48, 3, 1, 1), _c(48, 64, 3, 1, 1))), 128, 320, 0.17)
    b17 = lambda: Residual(Cat(  # noqa: E731
        branch0=_c(1088, 192, 1),
        branch1=_seq(_c(1088, 128, 1), _c(128, 160, (1, 7), 1, (0, 3)),
                     _c(160, 192, (7, 1), 1, (3, 0)))), 384, 1088, 0.10)
    b8 = lambda scale=0.2, relu=True: Residual(Cat(  # noqa: E731
        branch0=_c(2080, 192, 1),
        branch1=_seq(_c(2080, 192, 1), _c(192, 224, (1, 3), 1, (0, 1)),
                     _c(224, 256, (3, 1), 1, (1, 0)))), 448, 2080, scale, relu)
    self.repeat = _seq(*[b35() for _ in range(10)])
    self.mixed_6a = Cat(branch0=_c(320, 384, 3, 2),
                        branch1=_seq(_c(320, 256, 1), _c(256, 256, 3, 1, 1), _c(256, 384, 3, 2)),
                        branch2=mp())
    self.repeat_1 = _seq(*[b17() for _ in range(20)])
    self.mixed_7a = Cat(branch0=_seq(_c(1088, 256, 1), _c(256, 384, 3, 2)),
                        branch1=_seq(_c(1088, 256, 1), _c(256, 288, 3, 2)),
                        branch2=_seq(_c(1088, 256, 1), _c(256, 288, 3, 1, 1), _c(288, 320, 3, 2)),
                        branch3=mp())
    self.repeat_2 = _seq(*[b8() for _ in range(9)])
    self.block8 = b8(1.0, False)
    self.conv2d_7b = _c(2080, 1536, 1)
    self.classif = nn.Linear(1536, num_classes)

  def forward(self, x):
    for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                 "maxpool_5a", "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a", "repeat_2",
                 "block8", "conv2d_7b"):
      x = getattr(self, name)(x)
    return self.classif(x.mean((2, 3)))


def timm_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
  """The state dict under timm's names (InceptionResnetV2's residual blocks hold their branches
  directly, here under a helper 'cat' submodule; timm's InceptionV4 has no such level)."""
  return {k.replace(".cat.", "."): v for k, v in model.state_dict().items()}
