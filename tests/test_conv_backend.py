"""Convolution policies change where the arithmetic runs, never what a network computes."""

import pytest
import torch
from torch import nn

from scaler import build_model
from scaler.conv_backend import CHANNELS_LAST_FROM, ENV, POLICIES, conv_backend, is_depthwise, policy_for, resolve
from scaler.errors import UsageError
from scaler.training import seed_everything

CUDA = torch.device("cuda")  # a device object needs no GPU; policy_for only reads its type


def test_the_cpu_always_trains_channels_last(monkeypatch):
    monkeypatch.setenv(ENV, "contiguous")
    assert policy_for(torch.device("cpu"), 64) == "channels-last"


def test_auto_is_contiguous_below_its_threshold_and_channels_last_from_it(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert policy_for(CUDA, 64) == "contiguous"
    assert policy_for(CUDA, CHANNELS_LAST_FROM - 1) == "contiguous"
    assert policy_for(CUDA, CHANNELS_LAST_FROM) == "channels-last"
    assert resolve("native-depthwise", 300) == "native-depthwise"


def test_the_environment_names_a_policy_and_a_wrong_name_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv(ENV, "no-cudnn")
    assert policy_for(CUDA, 64) == "no-cudnn"
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(UsageError, match="SCALER_CONV='fast' is not allowed; use one of auto, contiguous"):
        policy_for(CUDA, 64)


def _step(model: nn.Module, layout: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and the first weight's gradient of one forward and backward pass."""
    x = torch.randn(4, 3, 40, 40, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=layout)
    model.zero_grad()
    torch.manual_seed(2)  # the same dropout and stochastic-depth draws
    out = model(x)
    out.square().sum().backward()
    return out.detach(), next(model.parameters()).grad.clone()


# Not no-cudnn: on a CPU it is channels_last itself (cuDNN exists only on CUDA), and
# test_no_cudnn_switches_cudnn_off_for_the_block_only_and_leaves_its_other_flags checks what it changes.
@pytest.mark.parametrize("policy", [p for p in POLICIES if p not in ("auto", "channels-last", "no-cudnn")])
def test_each_policy_computes_what_channels_last_computes(policy):
    seed_everything(0)
    model = build_model("b0", num_classes=10, width=0.25, depth=0.25).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with conv_backend(model, "channels-last") as layout:
        reference = _step(model, layout)
    model.load_state_dict(state)  # the BatchNorm statistics one pass moved
    with conv_backend(model, policy) as layout:
        out, grad = _step(model, layout)
    torch.testing.assert_close(out, reference[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, reference[1], rtol=1e-4, atol=1e-5)


def test_native_depthwise_feeds_depthwise_convolutions_contiguous_tensors_and_leaves_no_hook():
    model = build_model("b0", num_classes=10, width=0.25, depth=0.25)
    depthwise = [m for m in model.modules() if is_depthwise(m)]
    assert len(depthwise) == 7  # one per MBConv block: depth 0.25 leaves one block in each of 7 stages
    seen = []
    with conv_backend(model, "native-depthwise") as layout:
        assert layout == torch.channels_last
        # Strides, not is_contiguous(): a (C, 1, k, k) weight passes that in either layout.
        assert all(m.weight.stride() == torch.empty(m.weight.shape).stride() for m in depthwise)
        # Registered after the policy's hook, so it sees what the convolution is given.
        spy = depthwise[3].register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
        model(torch.randn(2, 3, 32, 32).contiguous(memory_format=layout))
        spy.remove()
    assert seen == [True]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_no_cudnn_switches_cudnn_off_for_the_block_only_and_leaves_its_other_flags(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    before = torch.backends.cudnn.enabled
    with conv_backend(model, "no-cudnn"):
        assert torch.backends.cudnn.enabled is False
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.enabled == before
    assert torch.backends.cudnn.benchmark is True


def test_contiguous_lays_out_weights_and_inputs_contiguously():
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).to(memory_format=torch.channels_last)
    with conv_backend(model, "contiguous") as layout:
        assert layout == torch.contiguous_format
        assert model[0].weight.is_contiguous()
