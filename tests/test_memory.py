"""Work that cannot fit in memory is refused in one line before it starts (on a CPU the kernel
would end the process with no message, exit 137); work that fits runs as before."""

from pathlib import Path

import pytest
import torch
from torch import nn

from scaler import memory
from scaler.data import load_dataset
from scaler.errors import RunError
from scaler.memory import check_images_fit, check_training_fits, saved_activation_bytes
from tests.test_data import _fresh_memo, make_folder  # noqa: F401  (an autouse fixture: each test loads afresh)

CPU = torch.device("cpu")


def available(monkeypatch, nbytes):
    monkeypatch.setattr(memory, "available_bytes", lambda: nbytes)


def test_saved_activations_are_counted_exactly_without_the_weights():
    # A convolution keeps its input (and its weight, which the parameters count); ReLU keeps
    # its output. Batch 2 of 3 x 8 x 8 floats in, 4 x 8 x 8 out.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    assert saved_activation_bytes(net, 2, 8) == 2 * 3 * 8 * 8 * 4 + 2 * 4 * 8 * 8 * 4
    # Four times the pixels, four times the bytes; the network itself is untouched.
    assert saved_activation_bytes(net, 2, 16) == 4 * saved_activation_bytes(net, 2, 8)
    assert next(net.parameters()).device == CPU


def test_a_network_that_cannot_be_counted_is_left_to_train():
    class ReadsValues(nn.Module):
        def forward(self, x):
            return x * float(x.sum())  # a value: meta tensors have none

    assert saved_activation_bytes(ReadsValues(), 2, 8) is None


def test_training_that_cannot_fit_is_refused_with_its_figures(monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    needed = saved_activation_bytes(net, 32, 64) + 2 * 4 * (4 * 3 * 9 + 4)
    available(monkeypatch, needed - 1)
    with pytest.raises(RunError, match=r"training at 64 px with batch 32 needs at least 0\.0 GiB"):
        check_training_fits(net, 32, 64, CPU)
    available(monkeypatch, needed)
    check_training_fits(net, 32, 64, CPU)  # exactly enough: a lower bound refuses only the impossible
    available(monkeypatch, 1)
    check_training_fits(net, 32, 64, torch.device("meta"))  # other devices raise their own error
    available(monkeypatch, None)
    check_training_fits(net, 32, 64, CPU)  # memory unknown: nothing to check against


def test_images_that_cannot_fit_are_refused_before_any_is_rendered(monkeypatch):
    available(monkeypatch, 3 * 32 * 32 * 30 - 1)
    with pytest.raises(RunError, match=r"data set synthetic stored at 32 px needs 0\.0 GiB for its 30 images"):
        load_dataset("synthetic", storage_resolution=32, train_images=20, val_images=10)
    available(monkeypatch, 3 * 32 * 32 * 30)
    assert len(load_dataset("synthetic", storage_resolution=32, train_images=20, val_images=10).train) == 20


def test_a_folder_counts_the_images_its_caps_take(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "data", per_class=5)  # 15 images
    available(monkeypatch, 3 * 16 * 16 * 15 - 1)
    with pytest.raises(RunError, match="for its 15 images"):
        load_dataset(str(root), storage_resolution=16)
    available(monkeypatch, 3 * 16 * 16 * 6)
    assert len(load_dataset(str(root), storage_resolution=16, train_images=3, val_images=3).train) == 3
    check_images_fit(6, 16, "x")  # the same figure, directly


def test_train_command_refuses_in_one_line_with_exit_1(cli, monkeypatch):
    available(monkeypatch, 10**6)
    result = cli("train", "--resolution", "64", "--epochs", "1", "--train-images", "40",
                 "--val-images", "20")
    assert result.code == 1
    assert result.err.startswith("error: training at 64 px with batch 32 needs at least")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads Linux's /proc/meminfo")
def test_available_memory_is_read_on_linux():
    total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                 if line.startswith("MemTotal:"))
    assert 0 < memory.available_bytes() <= total
