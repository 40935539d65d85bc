"""The benchmark scripts run: the GPU benchmark (where device time is scarce, so its --quick
form must work on a CPU), the proxy probe and its data variants, the seed-agreement analysis
and the per-class error analysis."""

import json
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_prints_its_figures_on_a_cpu(tmp_path, monkeypatch, capsys):
    proc = subprocess.run(
        [sys.executable, "benchmarks/gpu_search.py", "--device", "cpu", "--quick", "--root", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for figure in ("5. first use by convolution policy", "4. default search on cpu, 1 worker",
                   "1. first use per candidate", "6. launch-bound step: CUDA only", "2. training step", "3. train",
                   "7. layout by size", "9. replayed against eager: CUDA only"):
        assert any(line.startswith(figure) for line in lines), proc.stdout
    cells = {line.split(":")[0].strip(): line.count("first use") for line in lines if "warm epoch " in line}
    assert cells == {"contiguous": 2, "channels-last": 1, "native-depthwise": 2, "no-cudnn": 2}
    picked = next(line for line in lines if "least first use" in line)
    assert picked.rsplit(": ", 1)[1] in cells
    per_candidate = [line for line in lines if line.lstrip().startswith("#")]
    assert len(per_candidate) == 2 and all("first use" in line and "epoch 2" in line for line in per_candidate)
    by_size = lines[lines.index("7. layout by size (B0 training step, bf16, plain SGD):") + 1:]
    assert by_size and all(re.search(rf"{policy} first use -?[0-9.]+ s, warm [0-9]+ img/s", by_size[0])
                           for policy in ("contiguous", "channels-last", r"native-depthwise \(at 36 px\)")), by_size
    search = next(line for line in lines if line.startswith("4."))
    assert " wall " in search and "failed" not in search, search  # a failed search is reported, not timed
    assert len(list(tmp_path.glob("workers1/*/results.csv"))) == 1  # the search ran in its own folder and wrote its table
    assert not any(line.startswith("8.") for line in lines)  # minutes on a GPU: only when asked for
    # The refusals in this process (each as a subprocess spent seconds importing torch).
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from gpu_search import main as gpu_search

    with pytest.raises(SystemExit) as again:
        gpu_search(["--device", "cpu", "--quick", "--root", str(tmp_path), "--skip", "1,2,3,5,6,7"])
    assert again.value.code == 2 and "workers1 is not empty: give the searches a fresh --root" in capsys.readouterr().err
    alone = subprocess.run(  # no --root, as on the GPU machine: a temporary folder
        [sys.executable, "benchmarks/gpu_search.py", "--device", "cpu", "--quick", "--only", "8", "--proxy-workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert alone.returncode == 0, alone.stderr
    assert re.search(r"^ +[0-9.]+ s \| .*estimated", alone.stdout, re.M), alone.stdout  # its lines, as they came
    proxy = [line for line in alone.stdout.splitlines() if line.startswith("8.")]
    assert len(proxy) == 1 and re.search(r"^8\. .* wall [0-9.]+ s; .*; candidates \d+ complete; "
                                         r"top-1 [0-9.]+% best, [0-9.]+% worst$", proxy[0]), alone.stdout
    cut = subprocess.run(  # a limit it cannot meet: stopped with a Ctrl-C, reported, not failed
        [sys.executable, "benchmarks/gpu_search.py", "--device", "cpu", "--quick", "--only", "8", "--proxy-workers", "1",
         "--proxy-limit", "1", "--root", str(tmp_path / "cut")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert cut.returncode == 0, cut.stderr
    stopped = [line for line in cut.stdout.splitlines() if line.startswith("8.")]
    assert len(stopped) == 1 and re.search(r"wall [0-9.]+ s; stopped at the time limit after [0-9]+ s, before it printed "
                                           r"an estimate; no results.csv written$", stopped[0]), cut.stdout
    for bad in (["--only", "10"], ["--skip", "x"]):
        with pytest.raises(SystemExit) as wrong:
            gpu_search(["--device", "cpu", *bad])
        assert wrong.value.code == 2 and "name figures by their numbers, 1 to 9" in capsys.readouterr().err
    gpu_search(["--device", "cpu", "--quick", "--only", "3", "--train-optimizer", "adamw"])  # scaler train's default
    [train_line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("3.")]
    assert re.search(r"^3\. train \(32 images, 32 px, batch 8, adamw\): epoch 1 [0-9]+ img/s, epoch 2 [0-9]+ img/s = "
                     r"[0-9.]+x the pure SGD step \(no goal: an AdamW step against an SGD one\); epoch 1 took [0-9.]+x epoch 2 "
                     r"\(goal <= 1\.5x\)", train_line), train_line


def test_a_time_limit_stops_a_search_with_a_ctrl_c_and_says_so_only_where_it_did(monkeypatch):
    """benchmarks/search_run.py's limit, on stand-in commands that print an estimate line: a
    Ctrl-C at the limit, also where this process ignores Ctrl-C (as under `nohup`); a command
    that ignores it and finishes, or finishes first, is not reported as stopped."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from search_run import run_search

    def command(body: str, first: str = "") -> list[str]:
        return [sys.executable, "-c", "import signal, sys, time\n" + first + "print('estimated 9 s', flush=True)\n" + body]

    waits = command("try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    sys.exit(130)")
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run, code = run_search(waits, limit=1.0)
    finally:
        signal.signal(signal.SIGINT, ignored)
    # 130 from the child's handler; -SIGINT where a loaded machine had not yet started its interpreter
    assert code in (130, -signal.SIGINT) and run.wall < 30 and run.stopped_at is not None and 1.0 <= run.stopped_at < run.wall
    assert run.report().startswith("stopped at the time limit after 1 s, ") and "estimate of 9 s" in run.report()
    # the child ignores Ctrl-C from its first line on; the limit leaves its start-up 2 s (0.5 s failed under load)
    run, code = run_search(command("time.sleep(4)", first="signal.signal(signal.SIGINT, signal.SIG_IGN)\n"), limit=2.0)
    assert code == 0 and run.stopped_at is None and run.report().startswith("estimate 9 s vs the ")
    run, code = run_search(command("pass"), limit=60)
    assert code == 0 and run.stopped_at is None and run.wall < 30  # the timer does not keep it waiting


def test_gpu_check_names_the_wheel_it_lacks(tmp_path):
    """scripts/gpu_check.sh on a fresh python and a wheel folder that is empty: the last
    line names the first missing package and how to get it, exit 1, no benchmark started,
    nothing installed into that python."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    proc = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHON": str(venv / "bin" / "python"), "WHEELS": str(wheels), "DEVICE": "cpu",
             "SITE": str(tmp_path / "site")},
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"gpu_check: (\w+) is missing and {re.escape(str(wheels))} has no \w+ for this python; "
                        rf"run scripts/gpu_wheels.sh and carry {re.escape(str(wheels))}", last), proc.stderr
    assert proc.stdout == ""
    assert not list((tmp_path / "site").glob("*"))


VARIANT_ARGS = {"no-glyphs": "", "glyphs-per-class": "6", "glyph-cell": "16,24", "mosaic": "5,8,12",
                "conjunctions": "36,56", "glyph-classes": "12", "visibility": "100", "token-bags": "24,4,60,25,10,12",
                "textures": "10"}


def test_each_data_variant_renders_its_own_classes(monkeypatch):
    """benchmarks/data_variants.py: every design named in the README renders, labels within
    its classes, and differs from the built-in data; the patches are undone afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import data_variants
    import scaler.data.dataset as dataset_module
    import scaler.data.synthetic as synthetic

    assert set(VARIANT_ARGS) == set(data_variants.VARIANTS)
    standard, standard_labels = synthetic.render_synthetic(10, seed=0, stream=1, native=64)
    for name, args in VARIANT_ARGS.items():
        with monkeypatch.context() as m:
            for owner, attr in ((synthetic, "SYNTHETIC_CLASSES"), (synthetic, "TEXTURES"),
                                (synthetic, "LAYOUTS"), (synthetic, "GLYPHS_PER_CLASS"),
                                (dataset_module, "SYNTHETIC_CLASSES")):
                m.setattr(owner, attr, getattr(owner, attr))
            for attr in ("_glyph", "_dots", "_disc", "GLYPH_CELL", "DISTRACTORS", "VISIBILITY"):
                m.setattr(synthetic.SyntheticRenderer, attr, getattr(synthetic.SyntheticRenderer, attr))
            m.setattr(synthetic.SyntheticSource, "fingerprint", synthetic.SyntheticSource.fingerprint)
            source = synthetic.SyntheticSource(64, 64, 20, 10, 0)
            plain = source.fingerprint()
            described = data_variants.apply(f"{name}={args}" if args else name)
            assert described
            assert source.fingerprint() != plain  # its own cache entry and study fingerprint
            classes = len(synthetic.SYNTHETIC_CLASSES)
            assert dataset_module.count_classes("synthetic", 0.2) == classes
            images, labels = synthetic.render_synthetic(2 * classes, seed=0, stream=1, native=64)
            assert images.shape == (2 * classes, 3, 64, 64)
            assert sorted(set(labels.tolist())) == list(range(classes))
            assert not (images[:10] == standard).all()
        synthetic._glyph_bank.cache_clear()
    assert len(synthetic.SYNTHETIC_CLASSES) == 10 and synthetic.GLYPHS_PER_CLASS == 3
    assert synthetic.SyntheticSource(64, 64, 20, 10, 0).fingerprint() == plain
    again, _ = synthetic.render_synthetic(10, seed=0, stream=1, native=64)
    assert (again == standard).all()


def test_proxy_probe_trains_on_a_data_variant():
    proc = subprocess.run(
        [sys.executable, "benchmarks/proxy_probe.py", "--no-timm", "--variant", "no-glyphs", "--seeds", "0",
         "--nets", "1,1,1;1,1.1,1", "--epochs", "1", "--train-images", "64", "--val-images", "28",
         "--storage", "64", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    trained = [line for line in proc.stdout.splitlines() if "per class" in line]
    assert len(trained) == 2 and all(len(line.split("per class")[1].split()) == 7 for line in trained)
    assert "no glyph classes" in proc.stdout
    assert re.search(r"best/chance \d+\.\d\d\n", proc.stdout)
    # without timm's rate no cost is shown, rather than nan
    assert "timm reference not measured (skipped)" in proc.stdout and "nan" not in proc.stdout


def test_proxy_probe_recalibrates_batchnorm_and_reports_each_metrics_noise():
    proc = subprocess.run(
        [sys.executable, "benchmarks/proxy_probe.py", "--no-timm", "--seeds", "0,1", "--nets", "1,1,1;1,1.1,1",
         "--epochs", "1", "--train-images", "64", "--val-images", "28", "--storage", "64", "--threads", "1",
         "--recalibrate-bn"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    recomputed = re.findall(r"BN statistics recomputed: eval (\d\.\d{3}), augmented (\d\.\d{3})", proc.stdout)
    assert len(recomputed) == 4  # 2 networks x 2 seeds
    running = [float(m) for m in re.findall(r"top1 (\d\.\d{3}) \(", proc.stdout)]
    noise = re.search(r"running statistics (\d+\.\d\d) points, eval (\d+\.\d\d), augmented (\d+\.\d\d)", proc.stdout)
    # two seeds x two networks: every residual is +-(d0 - d1) / 4 (d the networks' difference on a seed), one
    # degree of freedom, so the noise is |d0 - d1| / 2 in points
    for column, values in ((1, running), (2, [float(e) for e, _ in recomputed]), (3, [float(a) for _, a in recomputed])):
        d0, d1 = values[1] - values[0], values[3] - values[2]
        assert float(noise[column]) == pytest.approx(abs(d0 - d1) / 2 * 100, abs=0.3)


def test_proxy_probe_lr_by_width_slows_only_the_width_scaled_weights(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import proxy_probe

    import scaler.training as training
    from scaler import build_model
    from scaler.train_config import TrainConfig

    monkeypatch.setattr(training, "make_optimizer", training.make_optimizer)  # restored afterwards
    proxy_probe.lr_by_width()
    proxy_probe.lr_by_width()  # a second call changes nothing
    config = TrainConfig(lr=0.004)
    model = build_model("b0", num_classes=10, width=0.25, depth=0.25)
    assert [g["lr"] for g in training.make_optimizer(model, config).param_groups] == [0.004, 0.004]
    model.width_ratio = 2.0
    optimizer = training.make_optimizer(model, config)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    assert len(lr_of) == len(list(model.parameters()))
    pointwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert {lr_of[id(m.weight)] for m in [*pointwise, classifier]} == {(0.002, config.weight_decay)}
    assert {lr_of[id(m.weight)] for m in depthwise} == {(0.004, config.weight_decay)}
    assert lr_of[id(classifier.bias)] == (0.004, 0.0)
    # the schedule sets every group's rate each step: the width-scaled ones keep their share
    training.set_learning_rate(optimizer, 0.01)
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert {rates[id(m.weight)] for m in [*pointwise, classifier]} == {0.005} and {rates[id(m.weight)] for m in depthwise} == {0.01}


def test_proxy_probe_trains_with_its_optimizer_experiments():
    """--lr-by-width and --adam-beta2 wrap the library's optimizer factory; it gained an
    argument (capturable_on) and both wrappers crashed on the first training."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/proxy_probe.py", "--no-timm", "--seeds", "0", "--nets", "1,1.1,1;1,1,1",
         "--epochs", "1", "--train-images", "64", "--val-images", "28", "--storage", "64", "--threads", "1",
         "--optimizer", "adamw", "--lr-by-width", "--adam-beta2", "0.99"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "width-scaled lr / width" in proc.stdout and "AdamW beta2 0.99" in proc.stdout
    # the gains are the first network's, here not the base: said
    assert "gain and premise against the first network, 1,1.1,1 (not the base 1,1,1)" in proc.stdout


def test_proxy_probe_adam_beta2_changes_only_adamws_second_moment(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import proxy_probe

    import scaler.training as training
    from scaler import build_model
    from scaler.train_config import TrainConfig

    monkeypatch.setattr(training, "make_optimizer", training.make_optimizer)  # restored afterwards
    model = build_model("b0", num_classes=10, width=0.25, depth=0.25)
    plain = training.make_optimizer(model, TrainConfig())
    assert {g["betas"] for g in plain.param_groups} == {(0.9, 0.999)}
    proxy_probe.adam_beta2(0.98)
    shorter = training.make_optimizer(model, TrainConfig())
    assert {g["betas"] for g in shorter.param_groups} == {(0.9, 0.98)}
    assert [g["lr"] for g in shorter.param_groups] == [g["lr"] for g in plain.param_groups]
    sgd = training.make_optimizer(model, TrainConfig(optimizer="sgd"))
    assert all("betas" not in g for g in sgd.param_groups)


def _results(folder: Path, top1: list[float | None], tied: list[bool | None]) -> str:
    """A search folder as `scaler search` writes it (results.csv and search.json), with the
    given top-1 per candidate (None: a failed one); the other columns are placeholders."""
    import pandas as pd

    from scaler.experiments.search import RESULT_COLUMNS

    study = folder / "study"
    study.mkdir(parents=True)
    states = ["failed" if t is None else "complete" for t in top1]
    frame = pd.DataFrame({c: [1.0] * len(top1) for c in RESULT_COLUMNS})
    frame["rank"] = range(1, len(top1) + 1)
    frame["candidate"] = range(len(top1))
    frame["beta"] = [1 + i / 10 for i in range(len(top1))]
    frame["resolution"] = 32
    frame["top1"], frame["tied_with_best"], frame["state"], frame["reason"] = top1, tied, states, ""
    frame.to_csv(study / "results.csv", index=False)
    counts = {state: states.count(state) for state in set(states)}
    (study / "search.json").write_text(json.dumps({"name": "study", "states": counts}))
    return str(folder)


def test_seed_agreement_reports_rank_agreement_noise_and_the_chance_of_the_goal(tmp_path, monkeypatch, capsys):
    # In this process: the script's four runs as subprocesses spent 40 s importing torch.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from seed_agreement import main as seed_agreement

    def run(*args: str) -> str:
        seed_agreement(list(args))
        return capsys.readouterr().out

    # Searches 0 and 1 differ by a shared offset only; search 2 swaps the last two candidates.
    # The fourth candidate failed in search 1: it is left out, not read as tied or as a score.
    roots = [_results(tmp_path / "s0", [0.6, 0.5, 0.4, 0.9], [True, False, False, False]),
             _results(tmp_path / "s1", [0.7, 0.6, 0.5, None], [True, True, False, None]),
             _results(tmp_path / "s2", [0.6, 0.4, 0.5, 0.1], [True, False, False, False])]
    out = run(*roots[:2], "--repeats", "1", "--draws", "50")
    assert "left out, not complete in every search (or another network in one: another proxy): (1, 1.3, 1)" in out
    assert "searches 0 and 1: Spearman 1.00 over 3 candidates complete in both; tied-best sets share ['(1, 1, 1)']" in out
    assert "per-run noise sigma 0.0 points (2 degrees of freedom)" in out  # an offset is no noise
    assert "--repeats 1: median Spearman 1.00, P(Spearman >= 0.9) 1.00" in out
    out = run(*roots, "--repeats", "1,4", "--draws", "200")
    # Pairs rank the candidates complete in both: ranks 3 2 1 4 against 4 2 3 1, 1 - 6 * 14 / 60;
    # with search 1, ranks 1 2 3 against 1 3 2 over three: 1 - 6 * 2 / 24.
    assert "searches 0 and 2: Spearman -0.40 over 4 candidates complete in both" in out
    assert "searches 1 and 2: Spearman 0.50 over 3 candidates complete in both" in out  # ranks 1 2 3 against 1 3 2: 1 - 6 * 2 / 24
    sigma = float(re.search(r"sigma (\d+\.\d) points \(4 degrees", out).group(1))
    assert sigma > 0
    chance = [float(v) for v in re.findall(r"P\(Spearman >= 0\.9\) (\d\.\d\d)", out)]
    assert len(chance) == 2 and chance[0] < chance[1] < 1.0  # more repeats, better odds, never certain
    assert "searches 0 and 1: Spearman 1.00" in run(roots[0], str(tmp_path / "s0"), "--draws", "50")  # the same search twice
    # searches that score every candidate alike give no ranking: said so, with no scipy warning
    flat = [_results(tmp_path / f"f{i}", [0.5, 0.5, 0.5, 0.5], [True] * 4) for i in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SystemExit, match="every search scores every candidate alike: there is no ranking"):
            run(*flat, "--draws", "50")
    short = _results(tmp_path / "s3", [0.6, None, 0.4, 0.9], [True, None, False, False])
    with pytest.raises(SystemExit, match="only 2 candidate\\(s\\) are complete in every search; need 3 or more"):
        run(roots[1], short)
    # As a script it still runs, and a refusal exits 1 with the reason.
    proc = subprocess.run([sys.executable, "benchmarks/seed_agreement.py", roots[1], short],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "only 2 candidate(s) are complete in every search; need 3 or more" in proc.stderr


def test_class_errors_renders_the_validation_images_again_and_splits_a_search_by_class(cli, tmp_path, monkeypatch):
    import optuna

    from scaler.data.synthetic import SyntheticRenderer, render_synthetic
    from scaler.statistics import unpack_correct
    from test_factories import TINY_NET

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from class_errors import recording_renderer, validation_draws

    renderer, drawn = recording_renderer(3, 2, 64)
    images, _ = renderer.render(40)
    assert (images == render_synthetic(40, 3, 2, 64)[0]).all() and len(drawn) == 40  # watching changes nothing
    low, high = SyntheticRenderer.VISIBILITY
    assert min(drawn) >= low and max(drawn) <= high and len(set(drawn)) > 1
    monkeypatch.setattr(SyntheticRenderer, "VISIBILITY", (128, 128))
    assert set(validation_draws(3, 40, 64)[1]) == {50.0}  # the draw it records is the visibility's
    monkeypatch.undo()

    net = tmp_path / "tinynet.py"
    net.write_text(TINY_NET)
    result = cli("search", "--base", f"{net}:make", "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1",
                 "--gamma-range", "1:1.2:0.1", "--tolerance", "0.5", "--base-resolution", "16", "--train-images", "32",
                 "--val-images", "40", "--batch-size", "16", "--epochs", "1", "--threads", "1", "--device", "cpu",
                 "--repeats", "2", "--quiet", "--root", str(tmp_path), "--name", "s")  # fmt: skip
    assert result.code == 0, result.err
    proc = subprocess.run([sys.executable, "benchmarks/class_errors.py", str(tmp_path / "s")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {m[0]: float(m[1]) for m in re.findall(r"^(\(.*?\)): top-1 +(\d+\.\d)", proc.stdout, re.M)}
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    expected = {f"({r.alpha:g}, {r.beta:g}, {r.gamma:g})": round(r.top1 * 100, 1) for r in table.itertuples()}
    assert rows == pytest.approx(expected, abs=0.051)  # each configuration's mean over its repeats
    assert proc.stdout.count("discs/dots/glyphs per repeat") == len(table)
    # one configuration's groups by hand: its repeats' per-image results on the rendered labels
    labels, _ = validation_draws(0, 40, 256)
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "s" / "study.journal")))
    trials = sorted((t for t in optuna.load_study(study_name="s", storage=journal).get_trials() if t.params["candidate"] == 0),
                    key=lambda t: t.params["repeat"])
    groups = [(labels < 4), (labels >= 4) & (labels < 7), (labels >= 7)]
    by_hand = "  ".join("/".join(f"{unpack_correct(t.user_attrs['val_correct'], 40)[g].mean() * 100:3.0f}" for g in groups) for t in trials)
    first = table[table["candidate"] == 0].iloc[0]
    assert f"({first.alpha:g}, {first.beta:g}, {first.gamma:g}): top-1" in proc.stdout
    line = next(l for l in proc.stdout.splitlines() if l.startswith(f"({first.alpha:g}, {first.beta:g}, {first.gamma:g})"))
    assert f"discs/dots/glyphs per repeat: {by_hand} |" in line

    # Several searches: each group's figures side by side, their mean, and the group's noise.
    # With two searches the residuals are +-(d - mean d) / 2 for d a configuration's difference
    # between them, so the noise is the standard deviation of d over sqrt(2).
    assert cli("search", "--base", f"{net}:make", "--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1",
               "--gamma-range", "1:1.2:0.1", "--tolerance", "0.5", "--base-resolution", "16", "--train-images", "32",
               "--val-images", "40", "--batch-size", "16", "--epochs", "1", "--threads", "1", "--device", "cpu",
               "--repeats", "2", "--quiet", "--root", str(tmp_path), "--name", "s1", "--seed", "1").code == 0  # fmt: skip
    from class_errors import GROUPS, report
    figures = [report(tmp_path / name, False) for name in ("s", "s1")]
    proc = subprocess.run([sys.executable, "benchmarks/class_errors.py", str(tmp_path / "s"), str(tmp_path / "s1")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("== ") == 2
    for group in GROUPS:
        d = np.array([figures[0][name][group] - figures[1][name][group] for name in figures[0]])
        noise = float(re.search(rf"^{group}: per-run noise (\d+\.\d) points \({len(d) - 1} degrees", proc.stdout, re.M)[1])
        assert noise == pytest.approx(d.std(ddof=1) / 2 ** 0.5, abs=0.051)
        block = proc.stdout.split(f"\n{group}: ")[1].split("\n\n")[0]
        for name in figures[0]:
            mean = (figures[0][name][group] + figures[1][name][group]) / 2
            assert re.search(rf"{re.escape(name)} .* mean +{mean:.1f}", block)


def test_interval_coverage_simulates_repeats_and_finds_the_interval_near_95_percent(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from interval_coverage import main as interval_coverage

    interval_coverage(["--trials", "400", "--cases", "2"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+60%\s+1000\s+(\d) pt\s+3\s+(\d+\.\d)%\s+(\d+\.\d) pt\s+(\d+\.\d) pt$", out, re.M)
    assert [noise for noise, *_ in rows] == ["3", "1"]
    for _, covered, width, one_run in rows:
        assert 90.0 <= float(covered) <= 99.0  # 400 draws of a 95% interval: about +-2 points
        assert float(width) > float(one_run)  # the seeds' noise widens one run's interval
    assert re.search(r"coverage \d+\.\d%-\d+\.\d% over 2 cases of 400 trials each \(nominal 95%\)", out)
    with pytest.raises(SystemExit):
        interval_coverage(["--trials", "0"])


def test_the_startup_benchmark_prints_each_figure_beside_its_ratio_to_import_torch():
    proc = subprocess.run([sys.executable, "benchmarks/startup.py", "--runs", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"reference: import torch in a fresh interpreter [0-9.]+ s \(median of 1\)", lines[0])
    assert len(lines) == 8 and all(re.fullmatch(r"scaler .+: [0-9.]+ s = [0-9.]+x the reference", line) for line in lines[1:]), lines


@pytest.mark.parametrize(("script", "argv", "message"), [
    ("flops_speed", ["--rounds", "0"], "--threads and --rounds must be >= 1"),
    ("flops_speed", ["--threads", "0"], "--threads and --rounds must be >= 1"),
    ("seed_agreement", ["a", "b", "--repeats", "x"], "argument --repeats: x: give integers >= 1"),
    ("seed_agreement", ["a", "b", "--repeats", "1,0"], "argument --repeats: 1,0: give integers >= 1"),
    ("seed_agreement", ["a", "b", "--draws", "0"], "--draws must be >= 1"),
    ("seed_agreement", ["a"], "give two or more searches"),
    ("proxy_probe", ["--no-timm", "--nets", "1,1"], "--nets 1,1: give each network as alpha,beta,gamma"),
    ("proxy_probe", ["--no-timm", "--variant", "glyphs-per-class=x"],
     "--variant glyphs-per-class=x: this variant takes 1 integer(s), got 'x'"),
    ("proxy_probe", ["--no-timm", "--variant", "no-glyphs=x"], "--variant no-glyphs=x: this variant takes 0 integer(s)"),
    ("proxy_probe", ["--no-timm", "--seeds", "0,x"], "--seeds 0,x: give integer seeds"),
    ("proxy_probe", ["--no-timm", "--threads", "0"], "--threads 0: it must be >= 1"),
    ("proxy_probe", ["--no-timm", "--epochs", "0"], "epochs = 0 is not allowed"),
    ("gpu_search", ["--device", "cpu", "--workers", "x"], "argument --workers: x: give integers >= 1"),
    ("gpu_search", ["--device", "cpu", "--workers", "1,0"], "argument --workers: 1,0: give integers >= 1"),
    ("gpu_search", ["--device", "cpu", "--proxy-workers", "0"], "--proxy-workers must be >= 1"),
    ("gpu_search", ["--device", "cpu", "--proxy-limit", "0"], "--proxy-limit must be a number of seconds > 0"),
    ("search_cost", ["--wall", "-5"], "--wall must be a number of seconds > 0"),
    ("search_cost", ["--wall", "5", "--threads", "0"], "--threads must be >= 1"),
    ("train_throughput", ["--steps", "0"], "--steps, --rounds and --threads must be >= 1"),
    ("train_throughput", ["--rounds", "0"], "--steps, --rounds and --threads must be >= 1"),
])  # fmt: skip
def test_benchmarks_refuse_bad_numbers_with_a_usage_line(script, argv, message, monkeypatch, capsys):
    """Bad command-line input is argparse's one-line error (exit 2), checked before any work:
    it was a traceback (UnboundLocalError, ValueError) or nan figures."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    module = __import__(script)
    with pytest.raises(SystemExit) as refused:
        (module.arguments if script == "train_throughput" else module.main)(argv)  # train_throughput's main sets torch's threads
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"error: {message}" in err, err


def test_benchmarks_import_this_checkouts_scaler_and_time_its_search(tmp_path, monkeypatch, capsys):
    """flops_speed.py and search_cost.py put the repository first on sys.path, and
    search_cost.py runs this checkout's scaler (`python -m scaler` with the repository first on
    PYTHONPATH), not the console script of a shared editable venv that may point elsewhere.
    A decoy `scaler` on PYTHONPATH stands for the other checkout."""
    decoy = tmp_path / "decoy" / "scaler"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy scaler was imported')\n")
    monkeypatch.setenv("PYTHONPATH", str(decoy.parent))
    for script, bad in (("flops_speed.py", "--rounds"), ("search_cost.py", "--wall")):
        proc = subprocess.run([sys.executable, f"benchmarks/{script}", bad, "0"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and "decoy" not in proc.stderr and "must be" in proc.stderr, proc.stderr

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import search_cost
    from search_run import SearchRun

    ran = []
    monkeypatch.setattr(search_cost, "import_timm", lambda path: (object(), None))
    monkeypatch.setattr(search_cost, "reference_rate", lambda timm, threads: 100.0)
    monkeypatch.setattr(search_cost, "run_search", lambda command, env=None, echo=None: (
        ran.append((command, env)) or (SearchRun(10.0, None, None), 0)))
    search_cost.main(["--root", str(tmp_path / "cost"), "--", "--seed", "1"])
    [(command, env)] = ran
    assert command[:4] == [sys.executable, "-m", "scaler", "search"] and command[-2:] == ["--seed", "1"]
    child = subprocess.run([*command[:3], "--help"], env={**os.environ, **env}, cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 0 and "decoy" not in child.stderr, child.stderr  # this checkout's, before the decoy
    search_cost.main(["--root", str(tmp_path / "other"), "--scaler", "/opt/scaler"])  # a command named is run as it is
    assert ran[-1][0][:2] == ["/opt/scaler", "search"] and ran[-1][1] == {}
    # the goal is the default search's (a --seed keeps it so): another search's cost gets no verdict
    capsys.readouterr()
    search_cost.main(["--root", str(tmp_path / "seeded"), "--", "--seed", "2"])
    assert capsys.readouterr().out.splitlines()[-1].endswith("images (goal <= 30,000: met)")
    search_cost.main(["--root", str(tmp_path / "longer"), "--", "--epochs", "9"])
    assert capsys.readouterr().out.splitlines()[-1].endswith("images (the goal <= 30,000 is the default search's; this one has --epochs 9)")


def test_seed_agreement_gives_each_repeat_count_the_same_figures_whatever_else_is_asked(tmp_path, monkeypatch, capsys):
    """Each repeat count draws from a generator of its own: one generator shared by the counts
    made a count's figures depend on which counts came before it in --repeats."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from seed_agreement import main as seed_agreement

    roots = [_results(tmp_path / "s0", [0.6, 0.5, 0.4, 0.9], [True, False, False, False]),
             _results(tmp_path / "s1", [0.7, 0.6, 0.5, 0.8], [True, True, False, False]),
             _results(tmp_path / "s2", [0.6, 0.4, 0.5, 0.1], [True, False, False, False])]
    lines = []
    for repeats in ("4", "1,4", "2,3,4"):
        seed_agreement([*roots, "--repeats", repeats, "--draws", "100"])
        lines.append(next(line for line in capsys.readouterr().out.splitlines() if "--repeats 4:" in line))
    assert lines[0] == lines[1] == lines[2], lines


def test_class_errors_reads_the_summary_by_its_name(tmp_path, monkeypatch):
    """A search on folder data writes data-files.json beside search.json; read as the first
    *.json it crashed with KeyError: 'config' instead of saying that only synthetic data is
    rendered again."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from class_errors import report

    from scaler.data.manifest import MANIFEST_NAME
    from scaler.experiments.search import SUMMARY_NAME

    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"files": []}))
    with pytest.raises(SystemExit, match=r"holds no study summary \(search.json or calibration.json\)"):
        report(tmp_path, False)
    (tmp_path / SUMMARY_NAME).write_text(json.dumps({"name": "s", "config": {"data": {"source": "folder"}}}))
    with pytest.raises(SystemExit, match="only studies on the built-in synthetic data can be rendered again"):
        report(tmp_path, False)


def test_train_throughput_alternates_train_and_pure_steps_and_its_usage_names_its_defaults(monkeypatch, capsys):
    """The end-to-end ratio times train() and the pure steps in alternating rounds (one after
    the other, noise on a shared machine gave ratios of 3.0 and 0.08); the docstring's usage
    line names the defaults."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import train_throughput
    from types import SimpleNamespace

    defaults = train_throughput.arguments([])
    usage = dict(re.findall(r"\[--(\w+) (\d+)\]", train_throughput.__doc__))
    assert usage == {"steps": str(defaults.steps), "rounds": str(defaults.rounds), "threads": str(defaults.threads)}

    calls = []
    monkeypatch.setattr(train_throughput, "load_dataset", lambda *a, **k: SimpleNamespace(num_classes=10))
    monkeypatch.setattr(train_throughput, "build_model", lambda *a, **k: object())
    monkeypatch.setattr(train_throughput, "train", lambda *a, **k: calls.append("train") or SimpleNamespace(
        epochs=[SimpleNamespace(images_per_s=r) for r in (50.0, 90.0, 80.0)], state="complete"))
    monkeypatch.setattr(train_throughput, "step_rate", lambda model, resolution, batch, steps, warmup: calls.append(
        f"pure warmup {warmup}") or 100.0)
    train_throughput.end_to_end(32, 8, 4, 3, 1, 3)
    assert calls == ["train", "pure warmup 3", "pure warmup 0", "train", "train", "pure warmup 0"]
    out = capsys.readouterr().out
    assert "train() best of epochs 2-3 at 32x32 batch 8:   90.0 img/s | pure steps  100.0 img/s | ratio 0.90" in out
    assert "rounds: train() 90.0, 90.0, 90.0; pure steps 100.0, 100.0, 100.0" in out
