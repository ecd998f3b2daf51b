r"""The PyTorch side of the speed comparison: the same nets and step, eager, on this machine.

  python -m launch.benchmarks.pytorch --model=resnet20 [--batch=128] [--steps=20] [--json]

Reference for `python -m classic.bench` (docs/performance.md runs both in one script,
`launch/bench_compare.sh`). The models are written here in plain torch (torchvision is a multi-GB
CUDA build on PyPI): He et al. 2015's CIFAR ResNets with option-A shortcuts and the ImageNet
ResNet-50 (v1, stride on the 1x1 as in the paper). The step is what a PyTorch researcher runs:
channels-last input, SGD with momentum 0.9 and weight decay, cross-entropy, BatchNorm in training
mode. Images/s is the median over the timed steps after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics


def _models():
  import torch
  from torch import nn
  import torch.nn.functional as F

  class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(cout)
      self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(cout)
      self.pad = cout - cin  # option A: subsample and zero-pad the identity

    def forward(self, x):
      y = F.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      if self.pad or self.conv1.stride[0] != 1:
        x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
      return F.relu(y + x)

  class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes=10):
      super().__init__()
      n = (depth - 2) // 6
      self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
      self.bn = nn.BatchNorm2d(16)
      layers, cin = [], 16
      for i, width in enumerate((16, 32, 64)):
        for j in range(n):
          layers.append(Basic(cin, width, 2 if (i and not j) else 1))
          cin = width
      self.layers = nn.Sequential(*layers)
      self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
      x = self.layers(F.relu(self.bn(self.conv(x))))
      return self.fc(x.mean((2, 3)))

  class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(cin, width, 1, stride, bias=False)
      self.bn1 = nn.BatchNorm2d(width)
      self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(width)
      self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
      self.bn3 = nn.BatchNorm2d(width * 4)
      self.down = None
      if stride != 1 or cin != width * 4:
        self.down = nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False),
                                  nn.BatchNorm2d(width * 4))

    def forward(self, x):
      y = F.relu(self.bn1(self.conv1(x)))
      y = F.relu(self.bn2(self.conv2(y)))
      y = self.bn3(self.conv3(y))
      return F.relu(y + (self.down(x) if self.down is not None else x))

  class ResNet50(nn.Module):
    def __init__(self, num_classes=1000):
      super().__init__()
      self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
      layers, cin = [], 64
      for i, (width, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for j in range(n):
          layers.append(Bottleneck(cin, width, 2 if (i and not j) else 1))
          cin = width * 4
      self.layers = nn.Sequential(*layers)
      self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
      return self.fc(self.layers(self.stem(x)).mean((2, 3)))

  return {
      "resnet20": (lambda: CifarResNet(20), 32, 10, 128),
      "resnet56": (lambda: CifarResNet(56), 32, 10, 128),
      "resnet110": (lambda: CifarResNet(110), 32, 10, 128),
      "resnet50": (lambda: ResNet50(), 224, 1000, 32),
  }, torch


def run(name: str, batch: int = 0, steps: int = 20, warmup: int = 3) -> dict:
  models, torch = _models()
  if name not in models:
    raise SystemExit(f"unknown --model={name!r}; known: {', '.join(sorted(models))}")
  make, size, classes, default_batch = models[name]
  batch = batch or default_batch
  torch.manual_seed(0)
  model = make().to(memory_format=torch.channels_last).train()
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
  x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
  y = torch.randint(0, classes, (batch,))

  def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()

  from classic.train.timing import call_times  # imports no JAX
  step_s = statistics.median(call_times(step, steps, warmup))
  return {"framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
          "model": name, "batch": batch, "step_s_median": step_s, "img_per_s": batch / step_s}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="resnet20")
  parser.add_argument("--batch", type=int, default=0)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  result = run(args.model, args.batch, args.steps, args.warmup)
  if args.json:
    print(json.dumps(result))
  else:
    for key, value in result.items():
      print(f"{key:<16} {value:,.3f}" if isinstance(value, float) else f"{key:<16} {value}")


if __name__ == "__main__":
  main()
