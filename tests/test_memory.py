"""Work that cannot fit in memory is refused in one line before it starts (on a CPU the kernel
would end the process with no message, exit 137); work that fits runs as before."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from scaler import memory
from scaler.data import clear_memo, load_dataset
from scaler.errors import RunError
from scaler.data.synthetic import SyntheticSource
from scaler.memory import AT_RISK, check_images_fit, check_training_fits, count_saved, saved_activation_bytes
from scaler.models import build_model
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


class Attention(nn.Module):
    """Patches and one attention layer: torch's CPU kernel saves no token-by-token matrix, its
    reference (math) path, which a meta device takes, does."""

    def __init__(self):
        super().__init__()
        self.patches, self.qkv, self.head = nn.Conv2d(3, 32, 4, 4), nn.Linear(32, 96), nn.Linear(32, 10)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        q, k, v = (t.unflatten(-1, (2, 16)).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        return self.head(nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2).mean(1))


@pytest.mark.parametrize("network", ["b0", "attention"])
def test_the_count_equals_what_a_real_cpu_step_saves(network):
    net = build_model("b0", width=0.25, num_classes=10) if network == "b0" else Attention()
    net.train()
    assert saved_activation_bytes(net, 4, 64) == count_saved(net, torch.randn(4, 3, 64, 64))


def test_counting_leaves_the_model_and_every_random_generator_as_they_were():
    class Coin(nn.Module):  # a factory's forward that draws from Python's generator
        def forward(self, x):
            return x * (2.0 if random.random() < 0.5 else 1.0)

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), Coin()).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    assert saved_activation_bytes(net, 2, 8) > 0
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert (np.random.get_state()[1] == states[2]).all()
    assert not net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_frozen_weights_need_no_gradient(monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    available(monkeypatch, saved_activation_bytes(net, 32, 64) + 2 * 4 * (4 * 3 * 9 + 4) - 1)
    with pytest.raises(RunError):
        check_training_fits(net, 32, 64, CPU)
    net[0].requires_grad_(False)
    check_training_fits(net, 32, 64, CPU)  # no gradient or optimizer state for frozen weights


def test_every_built_in_network_s_activations_are_under_the_at_risk_ratio():
    """Below AT_RISK times its input a training's activations are not counted; each built-in
    family's largest network must stay under it, or the check would skip what it is for."""
    for name in ("l2", "resnet50", "mobilenetv2"):
        with FakeTensorMode(allow_non_fake_inputs=True):  # shapes only: L2 in seconds, no memory
            net = build_model(name, num_classes=10).train()
            ratio = count_saved(net, torch.empty(2, 3, 64, 64)) / (2 * 3 * 64 * 64 * 4)
        assert 100 < ratio < AT_RISK / 1.25, (name, ratio)


def test_a_network_that_cannot_be_counted_is_left_to_train():
    class ReadsValues(nn.Module):
        def forward(self, x):
            return x * float(x.sum())  # a value: fake tensors have none

    assert saved_activation_bytes(ReadsValues(), 2, 8) is None


def test_training_that_cannot_fit_is_refused_with_its_figures(monkeypatch):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    needed = saved_activation_bytes(net, 32, 64) + 2 * 4 * (4 * 3 * 9 + 4)
    available(monkeypatch, needed // 2)  # 32 x (3 + 4) x 64 x 64 floats: 3.5 MiB
    with pytest.raises(RunError, match=r"training at 64 px with batch 32 needs at least 3\.5 MiB of memory \(3\.5 MiB of activations\); 1\.8 MiB is available"):
        check_training_fits(net, 32, 64, CPU)
    available(monkeypatch, needed - 1)
    with pytest.raises(RunError):
        check_training_fits(net, 32, 64, CPU)
    available(monkeypatch, needed)
    check_training_fits(net, 32, 64, CPU)  # exactly enough: a lower bound refuses only the impossible
    available(monkeypatch, 1)
    check_training_fits(net, 32, 64, torch.device("meta"))  # other devices raise their own error
    available(monkeypatch, None)
    check_training_fits(net, 32, 64, CPU)  # memory unknown: nothing to check against
    # heavy in weights at a small input: the input alone passed the quick look, and the
    # gradient and optimizer state of 30 MiB of weights were never weighed
    heavy = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10_000))
    states = 2 * 4 * sum(p.numel() for p in heavy.parameters())
    available(monkeypatch, 2 * 3 * 16 * 16 * 4 * AT_RISK + states // 2)
    with pytest.raises(RunError, match=r"training at 16 px with batch 2 needs at least 58\.\d MiB"):
        check_training_fits(heavy, 2, 16, CPU)


def test_images_that_cannot_fit_are_refused_before_any_is_rendered(monkeypatch):
    needed = 30 * 3 * 64 * 64  # bytes: 0.35 MiB
    rendered = []
    monkeypatch.setattr(SyntheticSource, "load", lambda self: rendered.append(self))
    available(monkeypatch, needed // 2)
    with pytest.raises(RunError, match=r"data set synthetic stored at 64 px needs 0\.4 MiB for its 30 images; 0\.2 MiB of memory is available"):
        load_dataset("synthetic", storage_resolution=64, train_images=20, val_images=10)
    available(monkeypatch, needed - 1)
    with pytest.raises(RunError):
        load_dataset("synthetic", storage_resolution=64, train_images=20, val_images=10)
    assert rendered == []
    monkeypatch.undo()
    available(monkeypatch, needed)
    assert len(load_dataset("synthetic", storage_resolution=64, train_images=20, val_images=10).train) == 20


def test_a_folder_counts_the_images_its_caps_take_twice_over(tmp_path, monkeypatch):
    """Decoding holds a folder's images twice at its peak (the decoded images, the tensor they
    move into; measured 2.0x on 400 images of 300 px, 2.6x before they were moved one by one)."""
    root = make_folder(tmp_path / "data", per_class=5)  # 15 images
    available(monkeypatch, 2 * 3 * 16 * 16 * 15 - 1)
    with pytest.raises(RunError, match=r"for its 15 images \(held 2 times over while decoded\)"):
        load_dataset(str(root), storage_resolution=16)
    available(monkeypatch, 2 * 3 * 16 * 16 * 6)
    assert len(load_dataset(str(root), storage_resolution=16, train_images=3, val_images=3).train) == 3
    check_images_fit(6, 16, "x", copies=2)  # the same figure, directly
    # read from the disk cache, the images are held once: 1.5x of them is enough
    monkeypatch.undo()
    load_dataset(str(root), storage_resolution=16, cache_dir=tmp_path / "cache")
    clear_memo()
    available(monkeypatch, 3 * 3 * 16 * 16 * 15 // 2)
    assert load_dataset(str(root), storage_resolution=16, cache_dir=tmp_path / "cache").decoded == 0


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


def fake_proc(tmp, cgroup_lines, available_kib=8 * 2**20):
    (tmp / "proc" / "self").mkdir(parents=True)
    (tmp / "proc" / "meminfo").write_text(f"MemTotal: {16 * 2**20} kB\nMemAvailable: {available_kib} kB\n")
    (tmp / "proc" / "self" / "cgroup").write_text("".join(line + "\n" for line in cgroup_lines))
    return tmp / "proc"


def test_a_cgroup_limit_caps_what_is_available_and_its_file_cache_counts_as_free(tmp_path):
    gib = 2**30
    # cgroup v2: the process's group sets no limit, the slice above it sets 6 GiB, of which
    # 5 GiB are used, 2 GiB of that by file cache: 3 GiB are available, not MemAvailable's 8.
    root = tmp_path / "v2"
    job = root / "slice" / "job"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("max\n")
    for folder, limit, usage, cache in ((root / "slice", 6 * gib, 5 * gib, 2 * gib),):
        (folder / "memory.max").write_text(f"{limit}\n")
        (folder / "memory.current").write_text(f"{usage}\n")
        (folder / "memory.stat").write_text(f"anon {usage - cache}\nfile {cache}\n")
    proc = fake_proc(tmp_path / "a", ["0::/slice/job"])
    assert memory.available_bytes(proc, root) == 3 * gib
    # cgroup v1 (hybrid: the v2 line names no limit), usage counted with its cache
    root = tmp_path / "v1"
    group = root / "memory" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(f"{4 * gib}\n")
    (group / "memory.usage_in_bytes").write_text(f"{4 * gib}\n")
    (group / "memory.stat").write_text(f"cache 10\ntotal_cache {gib}\n")
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # the root: no limit
    proc = fake_proc(tmp_path / "b", ["4:memory:/docker/abc", "1:cpu:/", "0::/"])
    assert memory.available_bytes(proc, root) == gib
    # shared memory (tmpfs, /dev/shm) is in the cache, and the kernel cannot drop it: not free
    (group / "memory.stat").write_text(f"cache 10\ntotal_cache {gib}\ntotal_shmem {gib // 4}\n")
    assert memory.available_bytes(proc, root) == gib - gib // 4
    (tmp_path / "v2" / "slice" / "memory.stat").write_text(f"anon {3 * gib}\nfile {2 * gib}\nshmem {2 * gib}\n")
    assert memory.available_bytes(fake_proc(tmp_path / "d", ["0::/slice/job"]), tmp_path / "v2") == gib  # v2: all of it shared
    # no cgroup limit anywhere: MemAvailable
    proc = fake_proc(tmp_path / "c", ["0::/"], available_kib=5 * 2**20)
    assert memory.available_bytes(proc, tmp_path / "none") == 5 * gib
    # nothing readable (not Linux)
    assert memory.available_bytes(tmp_path / "nothing", tmp_path / "none") is None
