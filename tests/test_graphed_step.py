"""The training step replayed as a CUDA graph: where it is allowed, how the loop drives it,
and how the estimate counts its setup. The graph itself runs only where CUDA is available."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scaler import build_model
from scaler.data import clear_memo, load_dataset
from scaler.errors import UsageError
from scaler.experiments import proxy
from scaler.experiments.proxy import estimate_seconds
from scaler.graphed_step import EAGER_STEPS, GRAPHS_ENV, TrainingStep, can_replay
from scaler.runtime import Runtime
from scaler.states import State
from scaler.training import EpochMetrics, TrainResult, make_optimizer, seed_everything, set_learning_rate, train
from scaler.train_config import TrainConfig

CUDA = torch.device("cuda")


def tiny_b0(dropout: float = 0.2) -> nn.Module:
    seed_everything(0)
    return build_model(width=0.25, depth=0.25, num_classes=10, dropout=dropout)


@pytest.fixture(scope="module")
def synthetic():
    clear_memo()
    return load_dataset("synthetic", storage_resolution=24, train_images=96, val_images=20, native_resolution=48)


def test_graphs_only_where_nothing_in_the_step_reads_the_host(monkeypatch):
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    ours = tiny_b0()
    assert can_replay(ours, CUDA, "adamw")
    assert not can_replay(ours, torch.device("cpu"), "adamw")
    assert not can_replay(ours, CUDA, "sgd")  # a Python learning rate would freeze in the graph
    assert not can_replay(ours, CUDA, "rmsprop")
    assert not can_replay(nn.Sequential(nn.Conv2d(3, 10, 3)), CUDA, "adamw")  # a factory's network

    class Branching(type(ours)):  # may draw in Python: it must declare itself safe again
        def forward(self, x):
            return super().forward(x)

    assert not can_replay(Branching(ours.spec), CUDA, "adamw")
    next(m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)).momentum = None
    assert not can_replay(ours, CUDA, "adamw")  # a cumulative average reads its step counter on the host
    monkeypatch.setenv(GRAPHS_ENV, "0")
    assert not can_replay(tiny_b0(), CUDA, "adamw")
    monkeypatch.setenv(GRAPHS_ENV, "yes")
    with pytest.raises(UsageError, match=f"{GRAPHS_ENV}='yes' is not allowed; use 1 .* or 0"):
        can_replay(tiny_b0(), CUDA, "adamw")


def test_an_eager_step_clears_the_gradients_before_each_batch():
    calls = []
    step = TrainingStep(lambda x, y: calls.append(("step", x)) or x, lambda: calls.append("zero"), graphed=False)
    for i in range(3):
        step(torch.tensor(float(i)), torch.tensor(0))
    assert calls == ["zero", ("step", 0.0), "zero", ("step", 1.0), "zero", ("step", 2.0)]
    assert step.taken == 3 and step.setup_seconds == 0.0


def test_adamw_is_built_capturable_with_its_learning_rate_in_a_tensor_where_asked():
    model = nn.Linear(2, 2)
    plain = make_optimizer(model, TrainConfig(lr=0.5))
    assert all(g["lr"] == 0.5 and not g["capturable"] for g in plain.param_groups)
    capturable = make_optimizer(model, TrainConfig(lr=0.5), torch.device("cpu"))
    rates = [g["lr"] for g in capturable.param_groups]
    assert all(g["capturable"] for g in capturable.param_groups)
    assert all(isinstance(r, torch.Tensor) and r.item() == 0.5 for r in rates)
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="sgd"), torch.device("cpu")), torch.optim.SGD)


def test_the_schedule_fills_a_device_learning_rate_in_place_and_replaces_a_number():
    model = nn.Linear(2, 2)
    plain = make_optimizer(model, TrainConfig(optimizer="sgd"))
    set_learning_rate(plain, 0.25)
    assert [g["lr"] for g in plain.param_groups] == [0.25, 0.25]
    rate = torch.tensor(1.0)
    for group in plain.param_groups:
        group["lr"] = rate
    set_learning_rate(plain, 0.5)
    assert all(g["lr"] is rate for g in plain.param_groups) and rate.item() == 0.5


def test_the_estimate_counts_a_graphs_setup_once_per_training_and_times_the_replayed_steps(synthetic, monkeypatch):
    """The warm run's 10 steps of 8 images took 1 s at 80 img/s, of which 0.6 s were the eager
    steps and the capture: its 8 replayed steps took 0.4 s, 160 img/s. A training of 2 epochs of
    96 images (12 steps each) then takes 0.6 s of setup, 22 replayed steps and 2 evaluations."""
    epoch = EpochMetrics(epoch=1, train_loss=1.0, top1=0.5, top5=None, val_loss=1.0, images_per_s=80.0,
                         seconds=2.0, peak_memory_mb=0.0)
    result = TrainResult(State.COMPLETE, "", (epoch,), "cuda:0", train_seconds=2.0, images_per_s=80.0,
                         setup_seconds=0.6)
    monkeypatch.setattr(proxy, "train", lambda *args: result)
    config = TrainConfig(epochs=2, batch_size=8, eval_batch_size=8)
    timing = estimate_seconds(lambda: tiny_b0(), 16, synthetic, config, Runtime(device="cpu", threads=1))
    assert (timing.setup, timing.setup_steps) == (0.6, EAGER_STEPS)
    assert timing.images_per_s == pytest.approx((10 - EAGER_STEPS) * 8 / 0.4)
    assert timing.evaluation == pytest.approx(2.5)  # 1 s for one batch of 8 of the 20 validation images
    assert timing.seconds == pytest.approx(0.6 + (24 - EAGER_STEPS) * 8 / 160 + 2 * 2.5)
    assert timing.scaled(2.0).setup == pytest.approx(1.2)  # a costlier network's eager steps cost more


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_a_replayed_step_trains_as_the_eager_step_does(monkeypatch):
    """Both optimizers capturable, no dropout or stochastic depth: the graph must land where
    the eager steps land, far closer than the distance training moved the weights."""
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    models = [tiny_b0(dropout=0.0).to(CUDA) for _ in range(2)]
    start = [p.detach().clone() for p in models[0].parameters()]
    for model in models:
        for module in model.modules():
            if hasattr(module, "drop_path"):
                module.drop_path = 0.0
    generator = torch.Generator(device=CUDA).manual_seed(0)
    batches = [(torch.randn(8, 3, 16, 16, device=CUDA, generator=generator),
                torch.randint(0, 10, (8,), device=CUDA, generator=generator)) for _ in range(EAGER_STEPS + 5)]
    runs = []
    for model, graphed in zip(models, (False, True)):
        optimizer = make_optimizer(model, TrainConfig(), CUDA)

        def forward_to_update(x, y, model=model, optimizer=optimizer):
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                loss = nn.functional.cross_entropy(model(x).float(), y)
            loss.backward()
            optimizer.step()
            return loss.detach()

        step = TrainingStep(forward_to_update, lambda optimizer=optimizer: optimizer.zero_grad(set_to_none=True), graphed)
        losses = []
        for i, (images, labels) in enumerate(batches):  # each batch new: the graph must read each one
            set_learning_rate(optimizer, 0.004 * (i + 1) / len(batches))
            losses.append(step(images, labels).item())
        runs.append((step, losses))
    (eager, eager_losses), (graph, graph_losses) = runs
    assert eager.setup_seconds == 0.0 and graph.setup_seconds > 0.0
    assert graph_losses == pytest.approx(eager_losses, abs=2e-2)
    moved = sum((p.detach() - s).abs().sum().item() for p, s in zip(models[0].parameters(), start))
    apart = sum((a.detach() - b.detach()).abs().sum().item() for a, b in zip(*(m.parameters() for m in models)))
    assert apart < 0.05 * moved


@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_training_replays_its_step_to_the_eager_result(synthetic, monkeypatch, device):
    """Both ways train with the same capturable AdamW, so SCALER_CUDA_GRAPHS changes how the
    steps are launched, not the result; on cuda:1 the capture must happen there, not on the
    current device (a graph captured elsewhere is empty and its replays do nothing)."""
    if torch.device(device).index is not None and torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    config = TrainConfig(epochs=2, batch_size=8)
    graphed = train(tiny_b0(), synthetic, 16, config, Runtime(device=device))
    monkeypatch.setenv(GRAPHS_ENV, "0")
    eager = train(tiny_b0(), synthetic, 16, config, Runtime(device=device))
    assert graphed.state is State.COMPLETE and eager.state is State.COMPLETE
    assert graphed.setup_seconds > 0.0 and eager.setup_seconds == 0.0
    assert graphed.steps == eager.steps == 2 * (96 // 8)
    assert [e.train_loss for e in graphed.epochs] == pytest.approx([e.train_loss for e in eager.epochs], abs=0.02)
