"""MACs and params measured with fvcore match the reference figures and a whole-model pass."""

import pytest

from scaler import build_model, network_spec
from scaler.counting import count_model, count_whole_model
from scaler.errors import UsageError

# ../shared/REFERENCE.md (the published figures), section 4: conv + linear MACs at native resolution, 1000 classes.
REFERENCE_GMACS = {
    "b0": (224, 0.3858),
    "b1": (240, 0.6868),
    "b2": (260, 0.9936),
    "b3": (300, 1.8271),
    "b4": (380, 4.3938),
    "b5": (456, 10.2664),
    "b6": (528, 19.0676),
    "b7": (600, 37.7459),
}


@pytest.mark.parametrize("variant", list(REFERENCE_GMACS))
def test_macs_match_reference(variant):
    resolution, gmacs = REFERENCE_GMACS[variant]
    count = count_model(network_spec(variant), resolution)
    assert count.macs / 1e9 == pytest.approx(gmacs, rel=5e-4)
    assert count.flops == 2 * count.macs
    # fvcore's full total adds BatchNorm and adaptive average pooling on top of the paper's convention.
    extra = count.by_operator["batch_norm"] + count.by_operator["adaptive_avg_pool2d"]
    assert count.fvcore_total == count.macs + extra
    assert 1.01 < count.fvcore_total / count.macs < 1.05


def test_b0_exact_totals():
    count = count_model(network_spec("b0"), 224)
    assert count.params == 5_288_548
    assert count.macs == 385_814_752
    assert count.fvcore_total == 401_659_392
    assert set(count.by_operator) == {"conv", "linear", "batch_norm", "adaptive_avg_pool2d"}


@pytest.mark.parametrize(
    "variant, width, depth, classes, resolution",
    [("b0", None, None, 1000, 224), (None, 1.3, 1.7, 10, 97), ("b2", 0.5, None, 7, 65)],
)
def test_piecewise_count_equals_one_whole_fvcore_pass(variant, width, depth, classes, resolution):
    spec = network_spec(variant, width=width, depth=depth, num_classes=classes)
    fast = count_model(spec, resolution)
    whole = count_whole_model(build_model(variant, width=width, depth=depth, num_classes=classes), resolution)
    assert fast.by_operator == whole.by_operator
    assert fast.fvcore_total == whole.fvcore_total
    assert fast.params == whole.params
    assert fast.unsupported_ops == whole.unsupported_ops


def test_parts_sum_to_total():
    count = count_model(network_spec("b3"), 300)
    assert [p.name for p in count.parts] == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head"]
    assert sum(p.params for p in count.parts) == 12_233_232
    assert sum(p.macs for p in count.parts) == count.macs
    assert [p.output_resolution for p in count.parts] == [150, 150, 75, 38, 19, 19, 10, 10, 1]


def test_unsupported_ops_are_reported_not_counted():
    count = count_model(network_spec("b0"), 224)
    assert count.unsupported_ops["aten::sigmoid"] == 16  # one SE gate per block


def test_resolution_is_validated():
    with pytest.raises(UsageError):
        count_model(network_spec("b0"), 0)
    with pytest.raises(UsageError):
        count_model(network_spec("b0"), 100_000)
