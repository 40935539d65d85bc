"""Proxy training is seeded, reports per-epoch metrics and ends with a state, never a crash."""

import copy
import json
from dataclasses import replace
import os
import math

import pytest
import torch

from scaler import build_model
from scaler import training
from scaler.data import Dataset, ImageSplit, clear_memo, load_dataset
from scaler.errors import RunError, UsageError
from scaler.experiments import proxy
from scaler.experiments.proxy import estimate_seconds
from scaler.experiments.search import CompoundSearch, SearchConfig
from scaler.runtime import Runtime, oversubscription, select_device, worker_device
from scaler.states import State
from scaler.train_config import TrainConfig
from scaler.training import (
    EpochMetrics,
    RMSpropTF,
    TrainResult,
    evaluate,
    lr_factor,
    repeat_seed,
    seed_everything,
    train,
    train_repeats,
)

TINY = dict(width=0.25, depth=0.25)


@pytest.fixture(scope="module")
def synthetic():
    clear_memo()
    return load_dataset("synthetic", storage_resolution=24, train_images=48, val_images=20,
                        native_resolution=48)


def tiny_model(num_classes=10, seed=0):
    seed_everything(seed)
    return build_model(num_classes=num_classes, **TINY)


CPU = Runtime(device="cpu", threads=1)


def run(dataset, config, resolution=16, **kw):
    return train(tiny_model(dataset.num_classes), dataset, resolution, config, CPU, **kw)


def test_training_is_seeded_and_reports_metrics(synthetic):
    config = TrainConfig(epochs=2, batch_size=16)
    steps = []
    a = run(synthetic, config, on_step=lambda *args: steps.append(args))
    b = run(synthetic, config)
    assert a.state is State.COMPLETE and a.reason == "" and a.device == "cpu"
    assert len(a.epochs) == 2 and a.steps == 6
    assert [s[0] for s in steps] == list(range(1, 7)) and steps[-1][1] == 6
    for ea, eb in zip(a.epochs, b.epochs):
        assert (ea.train_loss, ea.top1, ea.top5, ea.val_loss) == \
               (eb.train_loss, eb.top1, eb.top5, eb.val_loss)
    e = a.epochs[-1]
    assert 0 <= e.top1 <= e.top5 <= 1 and math.isfinite(e.val_loss)
    assert e.images_per_s > 0 and e.seconds > 0 and e.peak_memory_mb > 0
    assert a.top1 == e.top1 and a.top5 == e.top5
    json.dumps(a.to_dict(), allow_nan=False)
    other = run(synthetic, TrainConfig(epochs=2, batch_size=16, seed=1))
    assert other.epochs[-1].train_loss != a.epochs[-1].train_loss


def test_repeats_train_a_fresh_network_under_each_repeat_s_seed(synthetic):
    config = TrainConfig(epochs=1, batch_size=16, seed=3)
    watched = []

    def watch(seed):
        watched.append(seed)
        return None, None

    runs = train_repeats(lambda: build_model(num_classes=synthetic.num_classes, **TINY), synthetic, 16, config, CPU, repeats=2, watch=watch)
    assert [seed for seed, _ in runs] == watched == [3, repeat_seed(3, 0, 1)] and watched[1] != 3
    alone = train(tiny_model(synthetic.num_classes, seed=watched[1]), synthetic, 16, replace(config, seed=watched[1]), CPU)
    assert runs[1][1].epochs[-1].train_loss == alone.epochs[-1].train_loss  # repeat 1 is that seed's single run
    assert runs[0][1].epochs[-1].train_loss != runs[1][1].epochs[-1].train_loss
    with pytest.raises(UsageError, match="repeats = 0 is not allowed"):
        train_repeats(lambda: build_model(**TINY), synthetic, 16, config, CPU, repeats=0)


def test_steps_override_epochs(synthetic):
    r = run(synthetic, TrainConfig(steps=4, batch_size=16))
    assert r.steps == 4 and len(r.epochs) == 2  # 3 steps per epoch


def test_divergence_is_a_state_not_an_exception(synthetic):
    # SGD: AdamW's steps are bounded by the learning rate, so its loss stays finite longer
    r = run(synthetic, TrainConfig(epochs=2, batch_size=16, lr=1e6, warmup_epochs=0,
                                   optimizer="sgd"))
    assert r.state is State.DIVERGED
    assert "loss became" in r.reason and "epoch" in r.reason
    # No exception; metrics of finished epochs only: it diverged in the first one.
    assert r.reason.startswith("loss became") and "at epoch 1 " in r.reason
    assert r.epochs == () and math.isnan(r.top1) and r.steps >= 1
    json.dumps(r.to_dict(), allow_nan=False)


def test_outputs_that_overflow_on_the_validation_images_are_a_divergence(synthetic, monkeypatch):
    # AdamW at lr 1e6 on 2 CPU cores: a training loss of ~1e13, still finite, and logits whose
    # validation loss is nan; the evaluation is replaced to make that exact on every CPU
    import scaler.training as training_module

    real = training_module.evaluate

    def overflowed(*args, **kwargs):
        result = real(*args, **kwargs)
        return result._replace(loss=math.nan)

    monkeypatch.setattr(training_module, "evaluate", overflowed)
    r = run(synthetic, TrainConfig(epochs=3, batch_size=16))
    assert r.state is State.DIVERGED and r.reason == "validation loss became nan at epoch 1 (the outputs overflowed)"
    assert len(r.epochs) == 1 and r.epochs[0].top1 == r.top1  # the epoch is kept, its accuracy is not ranked
    json.dumps(r.to_dict(), allow_nan=False)


def test_on_epoch_true_stops(synthetic):
    seen = []
    r = run(synthetic, TrainConfig(epochs=3, batch_size=16),
            on_epoch=lambda m: seen.append(m.epoch) or True)
    assert r.state is State.PRUNED and seen == [1] and len(r.epochs) == 1


def test_timeout_after_crossing_the_limit(synthetic):
    r = run(synthetic, TrainConfig(epochs=3, batch_size=16, max_seconds=1e-6))
    assert r.state is State.TIMEOUT and len(r.epochs) == 1 and r.steps == 1
    assert math.isfinite(r.top1)


@pytest.mark.parametrize("classes", [3, 5])
def test_top5_none_with_five_classes_or_fewer(classes):
    """With 5 classes every image is in its top 5: a top-5 of 100% said nothing."""
    g = torch.Generator().manual_seed(0)
    split = lambda n: ImageSplit(  # noqa: E731
        torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8),
        torch.arange(n) % classes)
    ds = Dataset("toy", tuple("abcde"[:classes]), split(12), split(10), "toy", 0, 12)
    r = run(ds, TrainConfig(epochs=1, batch_size=4))
    assert r.state is State.COMPLETE and r.top5 is None and r.epochs[0].top5 is None
    assert r.to_dict()["top5"] is None


@pytest.mark.parametrize("optimizer", ["rmsprop", "adamw"])
def test_other_optimizers_train(synthetic, optimizer):
    r = run(synthetic, TrainConfig(steps=2, batch_size=16, optimizer=optimizer))
    assert r.state is State.COMPLETE and math.isfinite(r.epochs[-1].train_loss)


def test_rmsprop_tf_update_rule():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = RMSpropTF([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9)
    p.grad = torch.tensor([0.5, 1.0])
    opt.step()
    g = torch.tensor([0.5, 1.0])
    ms = 0.9 * 1.0 + 0.1 * g**2  # mean square starts at one
    step1 = 0.1 * g / torch.sqrt(ms + 1e-3)  # eps inside the root, lr inside the momentum
    assert torch.allclose(p.detach(), torch.tensor([1.0, -2.0]) - step1)
    opt.step()
    ms2 = 0.9 * ms + 0.1 * g**2
    step2 = 0.9 * step1 + 0.1 * g / torch.sqrt(ms2 + 1e-3)
    assert torch.allclose(p.detach(), torch.tensor([1.0, -2.0]) - step1 - step2)


def test_clipping_scales_the_whole_gradient_down_to_the_limit(synthetic):
    """SGD's first step moves the weights by lr x (1 + momentum) x the gradient, so the step
    shows the gradient: clipped to a quarter of its norm, every weight moves a quarter as far;
    a limit above the norm leaves the step exactly as it was."""
    config = TrainConfig(steps=1, batch_size=16, optimizer="sgd", lr=0.1, weight_decay=0.0, warmup_epochs=0)
    start = tiny_model(synthetic.num_classes)

    def step(config):
        model = copy.deepcopy(start)
        before = [p.detach().clone() for p in model.parameters()]
        train(model, synthetic, 16, config, CPU)
        return torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters())])

    plain = step(config)
    norm = float(plain.norm()) / (0.1 * 1.9)
    assert norm > 0
    quarter = step(replace(config, clip_grad_norm=norm / 4))
    assert float(quarter.norm()) == pytest.approx(0.1 * 1.9 * norm / 4, rel=1e-4)
    assert float((quarter - plain / 4).abs().max()) < 1e-6 < float(plain.abs().max()) / 1000
    assert torch.equal(step(replace(config, clip_grad_norm=norm * 2)), plain)


def test_lr_schedule_warmup_then_cosine():
    assert lr_factor(0, 100, 10) < lr_factor(9, 100, 10) <= 1
    assert lr_factor(10, 100, 10) == 1.0
    assert lr_factor(99, 100, 10) < 0.01
    assert lr_factor(0, 10, 0) == 1.0


def test_a_run_shorter_than_an_epoch_warms_up_over_its_share_and_decays(synthetic, monkeypatch):
    """--steps below 0.3 of an epoch (12,000 steps on ImageNet at batch 32) was all warmup: it
    ended at the peak rate, with no decay. The warmup is now 0.3 of the run where the run is
    shorter than an epoch; runs of an epoch or more keep 0.3 of an epoch."""
    rates: list[float] = []
    monkeypatch.setattr(training, "set_learning_rate", lambda optimizer, lr: rates.append(lr))
    run(synthetic, TrainConfig(steps=10, batch_size=2, lr=1.0, optimizer="sgd"))  # 24 steps an epoch
    assert len(rates) == 10 and rates[:3] == pytest.approx([1 / 4, 2 / 4, 3 / 4]) and rates[3] == 1.0  # 3 steps of warmup
    assert rates[-1] < 0.05 and rates == sorted(rates[:4]) + sorted(rates[3:], reverse=True)[1:]  # then the cosine down
    rates.clear()
    run(synthetic, TrainConfig(epochs=1, batch_size=2, lr=1.0, optimizer="sgd"))
    assert rates[:8] == pytest.approx([k / 8 for k in range(1, 8)] + [1.0])  # round(0.3 x 24) = 7 steps, as before


@pytest.mark.parametrize("field, value, match", [
    ("epochs", 0, "epochs"),
    ("batch_size", 0, "batch_size"),
    ("lr", 0.0, "lr"),
    ("lr", -1.0, "lr"),
    ("optimizer", "lion", "optimizer"),
    ("steps", 0, "steps"),
    ("steps", 10**9 + 1, "steps"),  # a mistyped count would train for years
    ("max_seconds", 0, "max_seconds"),
    ("label_smoothing", 1.0, "label_smoothing"),
    ("bn_momentum", 0.0, "bn_momentum"),
    ("clip_grad_norm", 0.0, "clip_grad_norm"),
    ("clip_grad_norm", -1.0, "clip_grad_norm"),
    ("clip_grad_norm", math.inf, "clip_grad_norm"),
])
def test_config_validation(field, value, match):
    with pytest.raises(UsageError, match=match):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("runtime, match", [
    (Runtime(threads=0), "threads"),
    (Runtime(threads=True), "threads"),
    (Runtime(device=3), "device"),
])
def test_runtime_validation(runtime, match):
    with pytest.raises(UsageError, match=match):
        runtime.validate()


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="tpu"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="not available"):
            select_device("cuda")


@pytest.mark.parametrize("device, gpus, expected", [
    ("cuda", 2, ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]),  # spread round-robin
    ("auto", 3, ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]),
    ("cuda:1", 2, ["cuda:1"] * 4),  # pinned
    ("auto", 0, ["auto"] * 4),  # no GPU: nothing to spread
    ("cpu", 2, ["cpu"] * 4),
])
def test_workers_spread_over_visible_gpus(device, gpus, expected):
    assert [worker_device(device, i, gpus) for i in range(4)] == expected


def test_runtime_for_worker_uses_the_visible_gpu_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    runtime = Runtime(device="cuda", threads=3)
    assert [runtime.for_worker(i) for i in range(3)] == [
        Runtime(device="cuda:0", threads=3), Runtime(device="cuda:1", threads=3), Runtime(device="cuda:0", threads=3)]


def test_model_with_too_few_classes_is_a_usage_error(synthetic):
    with pytest.raises(UsageError, match="num_classes=10"):
        train(tiny_model(num_classes=3), synthetic, 16, TrainConfig(epochs=1))
    # a module without a spec (any nn.Module, a factory's) is checked on its first batch's logits
    few = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5))
    with pytest.raises(UsageError, match=r"^the model returns shape \(8, 5\) for a batch of 8; training on synthetic needs "
                                         r"\(8, 10\) logits: build it with num_classes=10$"):
        train(few, synthetic, 16, TrainConfig(epochs=1, batch_size=8))
    maps = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 3))  # (batch, 10, h, w): no classifier
    with pytest.raises(UsageError, match=r"returns shape \(8, 10, 14, 14\)"):
        train(maps, synthetic, 16, TrainConfig(epochs=1, batch_size=8))


class _NoWeights(torch.nn.Module):
    """Logits of no trainable weight: the mean of each channel, repeated to 10 classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)).repeat(1, 4)[:, :10]


class _Detached(torch.nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).detach()


class _Votes(torch.nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (super().forward(x) > 0).long()


@pytest.mark.parametrize("model, words", [
    (_NoWeights(), "depend on no trainable weight"),
    (_Detached(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)), "depend on no trainable weight"),
    (_Votes(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10)), "returns torch.int64 logits"),
])  # fmt: skip
def test_logits_that_cannot_be_trained_are_a_usage_error(synthetic, model, words):
    """Each failed inside torch at the first backward ('element 0 of tensors does not require
    grad', exit 1); the fault is the network given: one line naming it, exit 2."""
    with pytest.raises(UsageError, match=words):
        train(model, synthetic, 16, TrainConfig(epochs=1, batch_size=8))


def test_result_properties_without_epochs():
    r = TrainResult(State.DIVERGED, "loss became nan at epoch 1 step 1", (), "cpu", 0.1, math.nan)
    assert math.isnan(r.top1) and r.top5 is None and math.isnan(r.val_loss)
    assert r.to_dict()["top1"] is None


def test_estimate_times_warm_steps_and_the_first_use(synthetic):
    timing = estimate_seconds(lambda: tiny_model(), 16, synthetic, TrainConfig(epochs=2, batch_size=8),
                              Runtime(device="cpu", threads=1))
    assert timing.images_per_s > 0 and timing.first_use >= 0
    # Two epochs of the training images at the measured rate, plus the evaluations.
    assert timing.seconds > 2 * len(synthetic.train) / timing.images_per_s


def test_estimate_splits_an_epoch_into_its_steps_and_its_evaluation(synthetic, monkeypatch):
    """The warm run's epoch took 2 s, of which its 10 steps of 8 images at 80 img/s took 1 s:
    the other second evaluated one batch of 8 of the 20 validation images, so evaluating all 20
    takes 2.5 s, and each of 2 epochs of 48 images trains 0.6 s and evaluates 2.5 s."""
    epoch = EpochMetrics(epoch=1, train_loss=1.0, top1=0.5, top5=None, val_loss=1.0, images_per_s=80.0, seconds=2.0,
                         peak_memory_mb=0.0)
    result = TrainResult(State.COMPLETE, "", (epoch,), "cpu", train_seconds=2.0, images_per_s=80.0)
    monkeypatch.setattr(proxy, "train", lambda *args: result)
    config = TrainConfig(epochs=2, batch_size=8, eval_batch_size=8)
    timing = estimate_seconds(lambda: tiny_model(), 16, synthetic, config, Runtime(device="cpu", threads=1))
    assert timing.images_per_s == 80.0 and timing.evaluation == pytest.approx(2.5)
    assert timing.seconds == pytest.approx(2 * (48 / 80 + 2.5))


def test_a_training_is_estimated_by_the_steps_it_takes():
    timing = proxy.Timing(seconds=0.0, first_use=0.0, images_per_s=100.0, evaluation=2.0)
    # --steps 5 on 640 images, batch 32: 160 images and the one evaluation of a partial epoch,
    # not a whole epoch of 640
    assert timing.training_seconds(TrainConfig(steps=5, batch_size=32), 640) == pytest.approx(5 * 32 / 100 + 2.0)
    # --steps 21 with 20 steps per epoch: two evaluations
    assert timing.training_seconds(TrainConfig(steps=21, batch_size=32), 640) == pytest.approx(21 * 32 / 100 + 2 * 2.0)
    # an epoch drops its last partial batch: 50 images at batch 32 train 32
    assert timing.training_seconds(TrainConfig(epochs=2, batch_size=32), 50) == pytest.approx(2 * (32 / 100 + 2.0))
    # fewer images than a batch: one step of all of them per epoch
    assert timing.training_seconds(TrainConfig(epochs=3, batch_size=32), 20) == pytest.approx(3 * (20 / 100 + 2.0))
    # a time cap ends the training, which then evaluates once more
    assert timing.training_seconds(TrainConfig(epochs=10, batch_size=32, max_seconds=1.0), 640) == pytest.approx(3.0)


def test_search_estimate_times_each_network_once_and_pays_its_first_use_once(monkeypatch):
    search = CompoundSearch.plan(SearchConfig(), repeats=2)
    timed = []

    def timing(build, resolution, *args):  # seconds grow with resolution, not with MACs
        timed.append(resolution)
        return proxy.Timing(float(resolution), 3.0, 100.0)

    monkeypatch.setattr(proxy, "estimate_seconds", timing)
    each, how = search.estimate_seconds(None, Runtime(device="cpu"), search.items(), in_process=False)
    total = sum(each.values())
    # each item: its network's training, and half its first use (the two repeats share it)
    assert each == {item: pytest.approx(search.network(item).resolution + 1.5) for item in search.items()}
    assert sorted(timed) == sorted(c.resolution for c in search.candidates)  # each network once, not per repeat
    warm = sum(2 * c.resolution for c in search.candidates)
    assert total == pytest.approx(warm + 3.0 * len(search.candidates))  # worker processes pay the first use
    assert how == f"timed {len(search.candidates)} networks: 100 img/s, first use 3.0 s per network"
    # in this process the networks the estimate ran stay warm: no first use left to pay
    assert sum(search.estimate_seconds(None, Runtime(device="cpu"), search.items())[0].values()) == pytest.approx(warm)


def test_beyond_the_limit_networks_take_the_timing_of_the_nearest_timed_one_scaled_by_macs():
    macs = {name: m for name, m in zip("abcdefg", [10, 24, 30, 40, 50, 60, 70])}
    measured = []

    def measure(name):
        measured.append(name)
        return proxy.Timing(seconds=macs[name] / 10 + 100, first_use=1.0, images_per_s=1000 / macs[name])

    timings = proxy.time_networks(macs, measure, limit=3)
    # the cheapest, the costliest, then the farthest from both in log MACs (24: ~1/2.4 of the way)
    assert measured == ["a", "g", "b"]
    assert timings["b"].seconds == pytest.approx(102.4)
    assert timings["d"].seconds == pytest.approx(102.4 * 40 / 24)  # nearer b (24) than g (70) by ratio
    assert timings["e"].seconds == pytest.approx(107 * 50 / 70)
    assert timings["f"].images_per_s == pytest.approx(1000 / 60)  # g's rate, scaled to f's MACs
    assert set(timings) == set(macs) and all(t.first_use == 1.0 for t in timings.values())
    assert [k for k, t in timings.items() if t.measured] == ["a", "b", "g"]
    # in this process only the unmeasured networks' first use is left; in workers every one's
    assert sum(proxy.first_use_left(t, in_process=True) for t in timings.values()) == 4.0
    assert sum(proxy.first_use_left(t, in_process=False) for t in timings.values()) == 7.0
    assert proxy.describe_timings(timings.values()) == "timed 3 of 7 networks: 14-100 img/s, first use 1.0 s per network"


@pytest.mark.parametrize("in_process, trainings, timed", [(True, 1, 6), (False, 1, 3), (False, 10, 6)])
def test_timing_stops_once_it_costs_a_tenth_of_the_work_it_estimates(in_process, trainings, timed):
    """Six networks of the same MACs, 100 s a training: 600 s of work at one training each,
    so 60 s for timing. Each measurement takes 25 s, 20 of them first use. In this process the
    first use is paid for the training anyway: 5 s each, all six timed. For worker processes it
    is a cost: 25, 50, 75 s, three timed; at ten trainings each (6,000 s) all six again."""
    macs = dict.fromkeys("abcdef", 1000)
    measured = []

    def measure(name):
        measured.append(name)
        return proxy.Timing(seconds=100.0, first_use=20.0, images_per_s=50.0, spent=25.0)

    timings = proxy.time_networks(macs, measure, in_process=in_process, work=lambda key, t: trainings * t.seconds)
    assert measured == list("afbcde")[:timed] and len(timings) == 6
    assert all(t.seconds == 100.0 for t in timings.values())


def test_one_network_is_timed_once():
    timings = proxy.time_networks({"only": 0}, lambda key: proxy.Timing(5.0, 0.0, 10.0), limit=1)
    assert timings == {"only": proxy.Timing(5.0, 0.0, 10.0)}



def test_a_network_that_fails_its_timing_run_does_not_stop_the_others():
    """The costliest network (timed second) running out of memory, or a factory's network
    raising, stopped the whole search before anything trained: its own training records why."""
    macs = {"a": 10, "b": 20, "c": 40}

    def measure(name):
        if name == "c":
            raise RuntimeError("out of memory")
        return proxy.Timing(seconds=float(macs[name]), first_use=0.0, images_per_s=1.0)

    timings = proxy.time_networks(macs, measure)
    assert [k for k, t in timings.items() if t.measured] == ["a", "b"] and timings["c"].seconds == pytest.approx(40.0)
    failing = proxy.time_networks(macs, lambda name: measure("c"))
    assert all(math.isnan(t.seconds) for t in failing.values())
    assert proxy.describe_timings(failing.values()) == "no network could be timed: each timing run failed, and each training will record why"
    with pytest.raises(UsageError):  # bad input fails every network alike: it is said at once
        proxy.time_networks(macs, lambda name: (_ for _ in ()).throw(UsageError("bad")))


def test_a_capped_timing_is_scaled_before_its_cap():
    """Scaling a capped time by MACs overshot the cap for a costlier network and fell below it
    for a cheaper one."""
    config = TrainConfig(epochs=100, max_seconds=0.5)
    rates = proxy.Timing(0.0, 0.0, 3000.0, evaluation=0.02)
    timing = replace(rates, seconds=rates.training_seconds(config, 1000), max_seconds=0.5,
                     uncapped=rates.training_seconds(replace(config, max_seconds=None), 1000))
    assert timing.seconds == pytest.approx(0.52)
    assert timing.scaled(5).seconds == pytest.approx(0.5 + 0.1)  # the cap and one evaluation of the costlier net
    assert timing.scaled(0.2).seconds == pytest.approx(0.5 + 0.004)  # still past the cap at 5x the rate

def test_more_threads_than_cores_are_warned_about():
    cores = os.cpu_count() or 1
    assert oversubscription(1, cores) is None and oversubscription(1, None) is None
    assert oversubscription(1, cores + 1) == f"warning: {cores + 1} threads on {cores} cores: they will compete"  # one process: no workers named
    assert oversubscription(2, None) == f"warning: 2 worker(s) x {cores} thread(s) on {cores} cores: they will compete"


def test_threads_past_four_per_core_are_refused_in_one_line(cli):
    """999 threads on 2 cores stalled a tiny training past 5 minutes (the walkthrough's)."""
    cores = os.cpu_count() or 1
    Runtime(device="cpu", threads=4 * cores).validate()
    result = cli("train", "--threads", str(4 * cores + 1), "--resolution", "16", "--steps", "1", "--train-images", "8", "--val-images", "4")
    assert (result.code, result.err) == (2, f"error: --threads {4 * cores + 1} is not allowed on this machine's {cores} cores; "
                                            f"give at most {4 * cores} (4 per core: more only compete, and 999 on 2 cores stalled a "
                                            "tiny training past 5 minutes)\n")


def test_data_that_does_not_fit_the_device_is_named_as_the_cause(synthetic, monkeypatch):
    def full(split, device):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ImageSplit, "to", full)
    with pytest.raises(RunError, match=r"out of memory on cpu holding the data set's images "
                                       r"\(0\.0 GiB\); use fewer or smaller images"):
        train(tiny_model(), synthetic, 16, TrainConfig(epochs=1, batch_size=16))


def test_evaluate_takes_a_device_as_torch_does(synthetic):
    model = tiny_model()
    by_name, by_device = evaluate(model, synthetic, 16, "cpu"), evaluate(model, synthetic, 16, torch.device("cpu"))
    assert by_name.top1 == by_device.top1 and by_name.loss == by_device.loss
    assert len(by_name.correct) == len(synthetic.val) == 20
