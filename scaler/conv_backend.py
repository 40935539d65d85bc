"""How convolutions run on CUDA: the memory layout, and which kernels serve depthwise convolutions.

Why this exists: cuDNN pays a set-up cost the first time it meets each channels_last
convolution shape (cuDNN 9.10+ builds an execution plan at run time for new depthwise shapes,
NVIDIA/cudnn-frontend#1066), and every candidate of a search brings new shapes. On one H200
(torch 2.11, cuDNN 9.19) each default candidate's first epoch took 4.5-14.5 s longer than its
second with channels_last everywhere, and 0.29 s on average (at most 1.18 s) in the contiguous
layout, whose warm steps were also faster up to 128 px; at 224 px batch 128 channels_last was
2.1x faster. `auto` follows those measurements (benchmarks/gpu_search.py, figures 1 and 7).

Policies (environment variable SCALER_CONV, read when training starts; CPU and MPS runs ignore
it and train channels_last):

- `auto` (default): `contiguous` below CHANNELS_LAST_FROM px, `channels-last` from it.
- `contiguous`: the whole network in the contiguous format: cuDNN's NCHW convolutions and
  PyTorch's own depthwise kernels.
- `channels-last`: everything channels_last on cuDNN (scaler 0.1's behaviour).
- `native-depthwise`: channels_last, but depthwise convolutions (weights and inputs) in the
  contiguous format, so that PyTorch's own kernels serve them. On one H200 it paid 0.2 s of
  first use at any size and matched channels_last warm at 128 px batch 128 only (README, figure 7).
- `no-cudnn`: channels_last with cuDNN switched off for the run.

A policy changes where the arithmetic runs, not what is computed: one step agrees up to
floating-point rounding (tests/test_conv_backend.py). Over a whole training in bf16 or fp16
those roundings can add up to a different top-1, and cuDNN may still serve some fp16
convolutions under any policy; the policy is not part of a study's fingerprint, so keep it
fixed within one study.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn

from scaler.errors import UsageError

POLICIES = ("auto", "contiguous", "channels-last", "native-depthwise", "no-cudnn")
DEFAULT_POLICY = "auto"
ENV = "SCALER_CONV"
# `auto` trains in the contiguous format below this resolution and channels_last from it. On
# one H200 (B0, bf16, SGD steps) contiguous was faster warm at 64 px batch 32 (1,402 against
# 1,026 img/s) and at 128 px batch 128 (4,105 against 3,595) and paid 0.2-1.3 s of first use
# against 7.5-11.4 s; channels_last was 2.1x faster at 224 px batch 128 (4,039 against 1,923),
# where its ~7.3 s more of first use is repaid after about 27,000 images (7.3 s / (1/1,923 -
# 1/4,039 s per image)). A second H200 (2026-12-04) had channels_last faster at 128 px batch 128
# (4,121 against 3,513) with 9.3 s of first use against 0.4 s, repaid only after about 210,000
# images, so contiguous stays below. Between 128 and 224 px nothing was measured.
CHANNELS_LAST_FROM = 176


def policy_for(device: torch.device, resolution: int) -> str:
    """The policy a run at `resolution` px on `device` uses: SCALER_CONV (default `auto`,
    resolved by resolution) on CUDA, 'channels-last' elsewhere (the CPU's fast path)."""
    if device.type != "cuda":
        return "channels-last"
    name = os.environ.get(ENV, DEFAULT_POLICY)
    if name not in POLICIES:
        raise UsageError(f"{ENV}={name!r} is not allowed; use one of {', '.join(POLICIES)}")
    return resolve(name, resolution)


def resolve(policy: str, resolution: int) -> str:
    """`policy` with `auto` replaced by what it means at `resolution` px."""
    if policy == "auto":
        return "channels-last" if resolution >= CHANNELS_LAST_FROM else "contiguous"
    return policy


def memory_format(policy: str) -> torch.memory_format:
    """The layout of the batches and of the network's weights under `policy`."""
    return torch.contiguous_format if policy == "contiguous" else torch.channels_last


def is_depthwise(module: nn.Module) -> bool:
    """A 2-d convolution with one group per input channel."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


@contextlib.contextmanager
def conv_backend(model: nn.Module, policy: str) -> Iterator[torch.memory_format]:
    """Apply `policy` to `model` (already on its device) while the block runs; yields the memory
    format its inputs should have. Hooks and cuDNN's switch are removed or restored afterwards;
    the weights keep the layout given here (a layout, not a value)."""
    layout = memory_format(policy)
    model.to(memory_format=layout)
    handles = []
    # Only `enabled` is touched: cudnn.flags() would also reset benchmark, deterministic and tf32.
    enabled = torch.backends.cudnn.enabled
    try:  # from here on, whatever was set up is undone even if setting up fails halfway
        if policy == "native-depthwise":
            for module in model.modules():
                if is_depthwise(module):
                    # PyTorch picks cuDNN for a depthwise convolution whenever its input or its
                    # weight is channels_last; both contiguous selects its own kernels. A
                    # (C, 1, k, k) weight counts as contiguous in either layout (its size-1
                    # dimension), so `.contiguous()` would keep the channels_last strides.
                    module.weight.data = module.weight.data.clone(memory_format=torch.contiguous_format)
                    handles.append(module.register_forward_pre_hook(_to_contiguous))
                    handles.append(module.register_forward_hook(_to_channels_last))
        if policy == "no-cudnn":
            torch.backends.cudnn.enabled = False
        yield layout
    finally:
        torch.backends.cudnn.enabled = enabled
        for handle in handles:
            handle.remove()


def _to_contiguous(module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(),)


def _to_channels_last(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous(memory_format=torch.channels_last)
