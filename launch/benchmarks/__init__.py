"""Speed benchmarks: commands that print numbers (never timed unit tests). docs/performance.md quotes them.

  python -m launch.benchmarks.compare          classic vs PyTorch, one run, side by side (train steps)
  python -m launch.benchmarks.pytorch          the PyTorch reference step alone
  python -m launch.benchmarks.convs            a model's convolutions: XLA flags and kernels compared
  python -m launch.benchmarks.layers           each CPU kernel against its textbook form
  python -m launch.benchmarks.input_pipeline   the input pipeline (threads, grain workers, tf.data)
  python -m launch.benchmarks.imagenet_like    writes the ImageNet-like JPEG folder input_pipeline reads
"""
