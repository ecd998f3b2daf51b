"""The papers' figures beside each variant (classic.models.Reference): our parameter and multiply-add
counts agree with every stated figure to one unit of its last digit, and where they do not, the
variant says why (`differs`); no variant claims a difference that is not there."""

import pytest

from classic import models
from classic.models import counts

# Deep nets take 5-45 s each to trace on 2 cores: their check runs with the slow tests.
DEEP = ("resnet152", "resnet1202", "preact164", "preact1001", "inception_v4", "inception_resnet_v1",
        "inception_resnet_v2", "inception_resnet_v2_tf_slim")
REFERENCED = [pytest.param(v, marks=pytest.mark.slow) if v in DEEP else v
              for v in models.variant_names() if models.reference(v) is not None]


def test_the_stated_figures_are_read_as_written():
  assert models.stated("0.27M") == (270_000, 10_000) and models.stated("60,000") == (60_000, 1)
  assert models.stated("1.8G") == (1.8e9, 1e8) and models.stated("42.68M") == pytest.approx((42.68e6, 1e4))
  assert models.agrees(269_722, "0.27M") and models.agrees(3_663_800_000, "3.6G")     # papers truncate, too
  assert not models.agrees(6_998_552, "6.8M")


@pytest.mark.parametrize("variant", REFERENCED)
def test_our_counts_are_the_papers_or_say_why_not(variant):
  ref = models.reference(variant)
  module = models.build(models.config(variant))
  totals = counts.totals(module, (1, *models.input_shape(variant)))
  checks = {name: models.agrees(totals[name], figure) for name, figure in (("params", ref.params), ("macs", ref.macs))
            if figure}
  assert checks or ref.top1_err or ref.top5_err, f"{variant}: a reference with nothing in it"
  if ref.differs:
    assert not all(checks.values()), f"{variant} agrees with {ref.params or ref.macs}: drop `differs`"
  else:
    assert all(checks.values()), f"{variant}: ours {totals}, the paper's {ref.params or ''} {ref.macs or ''}"
  for error in (ref.top1_err, ref.top5_err):
    assert error is None or 0 < error < 100 and ref.protocol
