"""Decoding one region of a JPEG: libjpeg-turbo's partial decoding, through nvImageCodec's CPU decoder.

libjpeg-turbo can decode a window of a JPEG without the rest: only the block columns the window spans go
through the inverse DCT, upsampling and colour conversion (`jpeg_crop_scanline`), the rows above it only
through the entropy decoder (`jpeg_skip_scanlines`), and decoding stops after its last row. That is what
tf.data's `decode_and_crop_jpeg` does. NVIDIA's nvImageCodec wheel (`nvidia-nvimgcodec-cu13`, 25 MB,
Linux) ships a build of libjpeg-turbo behind its region API, and its CPU decoder runs without a GPU or
CUDA; the pixels are those of PIL's decode of the whole image (tests/data/test_jpeg_regions.py).
docs/performance.md ("Decoding only the crop") weighs it against the other ways to the same library.

Only the CPU JPEG extension is loaded: nvImageCodec's GPU extensions print errors at import on machines
without CUDA's libraries, and they are not used here. Where the wheel is absent (macOS, Windows),
`available()` is False and decoding.py decodes whole images with PIL instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading

import numpy as np
from absl import logging

_local = threading.local()
_lock = threading.Lock()
_module = None          # nvidia.nvimgcodec once imported; False when it cannot be
_EXTENSION = "libjpeg_turbo_ext"


def _cpu_extension_dir(package_dir: str) -> str | None:
  """A directory holding (a link to, or a copy of) the package's CPU JPEG extension and nothing else."""
  extensions = os.path.join(package_dir, "extensions")
  names = [n for n in os.listdir(extensions) if n.startswith(_EXTENSION)] if os.path.isdir(extensions) else []
  if not names:
    return None
  target = os.path.join(extensions, names[0])
  user = os.getuid() if hasattr(os, "getuid") else 0
  here = os.path.join(tempfile.gettempdir(), f"classic-nvimgcodec-{user}", names[0].replace(".", "_"))
  link = os.path.join(here, names[0])
  if not os.path.exists(link):
    os.makedirs(here, exist_ok=True)
    staged = f"{link}.{os.getpid()}.{threading.get_ident()}"   # each process stages its own, then one atomic rename
    try:
      os.symlink(target, staged)
    except OSError:  # no symbolic links (Windows without the privilege): a copy
      shutil.copyfile(target, staged)
    os.replace(staged, link)
  return here


def _nvimgcodec():
  global _module
  if _module is None:
    with _lock:   # other threads wait here until the outcome is known (an early False would send them to PIL)
      if _module is None:
        _module = _load()
  return _module


def _load():
  """nvidia.nvimgcodec with only its CPU JPEG extension, or False where that cannot be had."""
  spec = importlib.util.find_spec("nvidia.nvimgcodec") if importlib.util.find_spec("nvidia") else None
  if spec is None or not spec.submodule_search_locations:
    return False
  try:
    where = _cpu_extension_dir(list(spec.submodule_search_locations)[0])
    if where is None:
      raise OSError(f"no {_EXTENSION} among its extensions")
    os.environ.setdefault("NVIMGCODEC_EXTENSIONS_PATH", where)
    os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")   # failures become our DecodeError
    from nvidia import nvimgcodec
  except (ImportError, OSError) as e:  # e.g. an unwritable temporary directory
    logging.warning("nvImageCodec is installed but its CPU JPEG decoder cannot be loaded (%s): JPEGs are "
                    "decoded whole, with PIL.", e)
    return False
  return nvimgcodec


def available() -> bool:
  """True where nvImageCodec's CPU JPEG decoder can be loaded."""
  return bool(_nvimgcodec())


def _decoder():
  """This thread's decoder and decode parameters (a decoder is not shared between threads)."""
  made = getattr(_local, "decoder", None)
  if made is None:
    nv = _nvimgcodec()
    made = _local.decoder = (
        nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, backends=[nv.Backend(nv.CPU_ONLY)],
                   max_num_cpu_threads=1),
        nv.DecodeParams(apply_exif_orientation=False, color_spec=nv.ColorSpec.SRGB))
  return made


def region(data: bytes, x0: int, y0: int, x1: int, y1: int) -> np.ndarray | None:
  """Pixels [y0:y1, x0:x1] of the colour JPEG `data` as (y1 - y0, x1 - x0, 3) uint8, decoding only
  what they need; None when the data cannot be decoded (corrupt or truncated)."""
  nv = _nvimgcodec()
  decoder, params = _decoder()
  try:
    stream = nv.CodeStream(data).get_sub_code_stream(region=nv.Region(start=(y0, x0), end=(y1, x1)))
    image = decoder.decode(stream, params=params)
  except RuntimeError:
    return None
  return None if image is None else np.asarray(image.cpu())
