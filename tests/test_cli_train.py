"""`scaler train`: the table and JSON outputs, data warnings and errors, divergence."""

import io
import json

import pandas as pd
import pytest
from PIL import Image
from rich.console import Console

from scaler.cli.progress import Count, StepBar, make_progress
from scaler.statistics import mean_interval, proportion_interval

TINY = ["--width", "0.25", "--depth", "0.25", "--resolution", "32", "--train-images", "64",
        "--val-images", "32", "--batch-size", "16", "--threads", "1", "--device", "cpu"]  # fmt: skip


def test_every_command_that_trains_takes_quiet_as_q(cli):
    """`-q` worked on search, compare, calibrate and worker, and was 'No such option' on train."""
    result = cli("train", "b0", *TINY, "--epochs", "1", "-q")
    assert result.code == 0 and result.err.startswith("  b0 epoch 1: train loss "), result.err
    for command in ("search", "compare", "calibrate", "worker", "train"):
        assert "-q, --quiet" in cli(command, "--help").out, command


def test_train_table(cli):
    result = cli("train", "b0", *TINY, "--epochs", "2")
    assert result.code == 0, result.err
    assert "complete" in result.out and "val top-1" in result.out
    assert "64 train / 32 val images, 10 classes" in result.out
    # one run's top-1 is a sample of 32 images: its Wilson interval, from the same (seeded) run's figure
    top1 = json.loads(cli("train", "b0", *TINY, "--epochs", "2", "--format", "json").out)["top1"]
    low, high = proportion_interval(round(top1 * 32), 32)
    assert f"final val top-1 {top1:.1%}, 95% interval {low * 100:.1f}-{high * 100:.1f}% over the 32 validation images" in " ".join(result.out.split())


def test_a_batch_larger_than_the_training_set_is_said(cli, tmp_path):
    """64 training images and --batch-size 100: each epoch is one step on all 64, whatever the
    flag says, and the training and the search say so (nothing said where the batch fits)."""
    said = "warning: --batch-size 100 is more than the 64 training images: each epoch is one step on a batch of 64\n"
    trained = cli("train", "b0", *TINY, "--epochs", "1", "--batch-size", "100", "--format", "json")
    assert trained.code == 0 and json.loads(trained.out)["steps"] == 1 and said in trained.err, trained.err
    searched = cli("search", "--alpha-range", "1", "--beta-range", "1", "--gamma-range", "1", "--target", "1", "--base-resolution", "16",
                   "--base-width", "0.25", "--train-images", "64", "--val-images", "32", "--epochs", "1", "--batch-size", "100",
                   "--threads", "1", "--device", "cpu", "--quiet", "--root", tmp_path)
    assert searched.code == 0 and said in searched.err, searched.err
    assert "is more than" not in cli("train", "b0", *TINY, "--epochs", "1").err


class Screen(io.StringIO):
    """A terminal that keeps what is drawn on it."""

    def isatty(self) -> bool:
        return True


def terminal(monkeypatch) -> Screen:
    """`scaler train`'s progress console as a terminal (under pytest, stderr is a file, where
    no bar is drawn): what it draws lands in the returned screen."""
    import scaler.cli.train

    screen = Screen()
    monkeypatch.setattr(scaler.cli.train, "progress_console", Console(file=screen, force_terminal=True, width=100, markup=False))
    return screen


def test_a_training_bar_counts_no_steps_before_it_knows_how_many():
    """Before a training's first step its bar has no total: the count is blank, not '0/?'."""
    with make_progress(Console(file=Screen(), force_terminal=True, width=100)) as progress:
        bar = StepBar(progress, "b0", 2)
        count = next(column for column in progress.columns if isinstance(column, Count))
        assert count.render(progress.tasks[0]).plain == ""
        bar.on_step(1, 8, 2.3, 100.0)
        assert count.render(progress.tasks[0]).plain == "1/8"


def test_on_a_terminal_the_bars_are_drawn_on_stderr_and_stdout_keeps_the_table(cli, monkeypatch):
    screen = terminal(monkeypatch)
    result = cli("train", "b0", *TINY, "--epochs", "2", "--format", "csv")
    assert result.code == 0, result.err
    drawn = screen.getvalue()
    assert "b0 epoch 2/2" in drawn and "ETA" in drawn and " b0 epoch 1: train loss" in drawn  # the bar and the epoch lines
    assert pd.read_csv(io.StringIO(result.out))["epoch"].tolist() == [1, 2]  # stdout: the CSV alone


def test_train_stdout_holds_the_results_alone_and_each_csv_row_the_runs_state(cli):
    """Progress bars (on a terminal) and epoch lines go to stderr, so `scaler train > table.txt`
    writes the table alone; a run stopped by --max-seconds says so, and why, on each epoch's CSV
    row, as JSON and the --repeats CSV carry its state."""
    result = cli("train", "b0", *TINY, "--epochs", "2")
    assert result.code == 0, result.err
    assert " b0 epoch 1: train loss" in result.err and " b0 epoch 2: train loss" in result.err
    assert "train loss" in result.out and " epoch 1: " not in result.out
    assert "peak MB: the process's largest resident memory so far (torch's own included)" in " ".join(result.out.split())
    assert "ETA" not in result.out + result.err  # a bar is drawn on a terminal only: a log file gets the lines
    done = pd.read_csv(io.StringIO(cli("train", "b0", *TINY, "--epochs", "2", "--format", "csv").out))
    assert done["state"].tolist() == ["complete", "complete"]
    capped = cli("train", "b0", *TINY, "--epochs", "3", "--max-seconds", "0.01", "--format", "csv")
    assert capped.code == 0, capped.err
    rows = pd.read_csv(io.StringIO(capped.out))
    assert len(rows) < 3 and set(rows["state"]) == {"timeout"}
    assert rows["reason"].nunique() == 1 and rows["reason"][0].startswith("time limit of 0.01 s reached") and done["reason"].isna().all()
    # with --repeats the product is a mean over seeds: when no run completed there is none (exit 1), the runs still shown
    none = cli("train", "b0", *TINY, "--epochs", "3", "--max-seconds", "0.01", "--repeats", "2", "--format", "csv")
    assert none.code == 1 and pd.read_csv(io.StringIO(none.out))["state"].tolist() == ["timeout", "timeout"]
    assert none.err.endswith("error: no run completed (2 timeout): a mean over seeds needs complete trainings; "
                             "give --max-seconds more room (or drop it)\n")


def test_train_json_is_reproducible(cli):
    runs = [json.loads(cli("train", "b0", *TINY, "--epochs", "1", "--format", "json").out) for _ in range(2)]
    assert runs[0]["state"] == "complete" and len(runs[0]["epochs"]) == 1
    # the final top-1 with its Wilson interval over the 32 validation images
    assert (runs[0]["top1_low"], runs[0]["top1_high"]) == pytest.approx(proportion_interval(round(runs[0]["top1"] * 32), 32))
    assert [(e["top1_low"], e["top1_high"]) for e in runs[0]["epochs"]] == [(runs[0]["top1_low"], runs[0]["top1_high"])]  # each epoch's
    assert 0.0 <= runs[0]["top1"] <= 1.0 and runs[0]["top5"] is not None
    strip = lambda r: [(e["train_loss"], e["top1"], e["val_loss"]) for e in r["epochs"]]  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])


def test_train_csv_carries_each_epochs_interval_and_the_repeats_summary(cli):
    one = cli("train", "b0", *TINY, "--epochs", "2", "--format", "csv")
    assert one.code == 0, one.err
    epochs = pd.read_csv(io.StringIO(one.out))
    assert epochs["epoch"].tolist() == [1, 2]
    for _, row in epochs.iterrows():
        assert (row["top1_low"], row["top1_high"]) == pytest.approx(proportion_interval(round(row["top1"] * 32), 32))
    three = cli("train", "b0", *TINY, "--epochs", "1", "--repeats", "3", "--format", "csv")
    assert three.code == 0, three.err
    runs = pd.read_csv(io.StringIO(three.out))
    assert len(runs) == 3 and runs["repeats"].tolist() == [3, 3, 3]  # completed runs, named as in JSON
    mean, std, low, high = mean_interval(runs["top1"].tolist(), images=32)
    for column, value in (("top1_mean", mean), ("top1_std", std), ("top1_low", low), ("top1_high", high)):
        assert runs[column].tolist() == pytest.approx([value] * 3), column


def test_train_on_a_folder_warns_about_corrupt_files(cli, tmp_path):
    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        folder = tmp_path / "images" / label
        folder.mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (40, 30), colour).save(folder / f"{i}.png")
    (tmp_path / "images" / "red" / "broken.png").write_bytes(b"not a png at all")
    result = cli("train", "b0", *TINY, "--data", tmp_path / "images", "--epochs", "1", "--batch-size", "8", "--format", "json")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]  # beside the progress lines
    assert warnings == ["warning: skipped 1 unreadable image file(s): red/broken.png: not an image Pillow can read"]
    assert json.loads(result.out)["top5"] is None  # fewer than 5 classes


def test_train_bad_data_and_divergence(cli, tmp_path):
    missing = cli("train", "b0", *TINY, "--data", tmp_path / "nope")
    assert missing.code == 2 and missing.err.startswith(f"error: --data: data source '{tmp_path / 'nope'}' does not exist")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cat" / "a.png")
    one = cli("train", "b0", *TINY, "--data", tmp_path / "one")
    assert one.code == 2 and len(one.err.strip().splitlines()) == 1
    both = cli("train", "b0", *TINY, "--epochs", "2", "--steps", "3")  # --steps would silently win
    assert both.code == 2 and both.err == "error: --epochs 2 and --steps 3 both set how long to train; give one\n"
    diverged = cli("train", "b0", *TINY, "--epochs", "1", "--optimizer", "sgd", "--lr", "1e6", "--format", "json")
    assert diverged.code == 1
    assert json.loads(diverged.out)["state"] == "diverged"
    # AdamW, one step: the epoch ends and its evaluation overflows; no top-1 interval for that network
    evaluated = [*TINY, "--epochs", "1", "--lr", "1e9", "--batch-size", "64"]
    table = cli("train", "b0", *evaluated)
    assert table.code == 1 and "validation loss became nan at epoch 1" in table.err
    text = " ".join(table.out.split())
    assert "no final top-1: a diverged training's network is broken, so it is not scored" in text and "final val top-1" not in text
    data = json.loads(cli("train", "b0", *evaluated, "--format", "json").out)
    assert data["state"] == "diverged" and len(data["epochs"]) == 1
    assert data["top1"] is None and data["top5"] is None and data["top1_low"] is None and data["top1_high"] is None
    assert data["epochs"][0]["top1"] is not None  # the epoch's evaluation, as measured

def test_train_zero_init_starts_every_residual_branch_at_zero(cli, monkeypatch):
    import scaler.training as training

    real, started = training.train, []

    def record(model, *args, **kwargs):  # the last BatchNorm scale of each residual branch, then train for real
        blocks = [b for b in model.modules() if getattr(b, "use_residual", False)]
        started.append([float(b.block[-1][1].weight.detach().abs().sum()) for b in blocks])
        return real(model, *args, **kwargs)

    monkeypatch.setattr(training, "train", record)
    for flag in ("--zero-init", "--standard-init"):
        assert cli("train", "b0", *TINY, "--steps", "1", flag, "--format", "json").code == 0
    zero, standard = started
    assert zero and all(s == 0.0 for s in zero)
    assert len(standard) == len(zero) and all(s > 0.0 for s in standard)


def test_a_batch_of_one_image_is_refused_before_training(cli, monkeypatch, tmp_path):
    """BatchNorm learns from a batch's statistics: at 32 px a batch of one reached a 1x1 map and
    failed inside PyTorch (exit 1, a ValueError)."""
    one = cli("train", "b0", *TINY, "--batch-size", "1", "--epochs", "1")
    assert one.code == 2 and one.err == "error: --batch-size 1 is not allowed; it must be an integer >= 2\n"
    single = cli("train", "b0", *TINY[:6], "--train-images", "1", "--val-images", "8", "--epochs", "1", "--format", "json")
    assert single.code == 2  # named by its flag, as any refused value is
    assert single.err == "error: --train-images 1 is not allowed; it must be an integer from 2 to 100000000\n"
    folder = tmp_path / "one"  # a folder of one training image: no flag is at fault
    for split, name in (("train", "a"), ("val", "a"), ("val", "b")):
        (folder / split / name).mkdir(parents=True)
        Image.new("RGB", (16, 16), (200, 10, 10)).save(folder / split / name / "x.png")
    (folder / "train" / "b").mkdir()  # a class train/ has no image of
    screen = terminal(monkeypatch)
    table = cli("train", "b0", *TINY[:6], "--data", str(folder), "--epochs", "1")
    assert table.err.endswith(f"error: data set {folder} has 1 training image(s); training needs at least 2 "
                              "(BatchNorm learns from a batch's statistics)\n")
    assert table.code == 2 and table.out == "" and "loading data" in screen.getvalue()
    assert "epoch" not in screen.getvalue()  # refused before a progress bar is drawn


def test_steps_show_the_epochs_they_take_and_intervals_stay_in_0_1(cli, monkeypatch):
    import scaler.cli.train

    bars = []
    monkeypatch.setattr(scaler.cli.train, "StepBar", lambda progress, label, epochs: bars.append(epochs) or StepBar(progress, label, epochs))
    steps = cli("train", "b0", *TINY, "--steps", "2")  # 64 images in batches of 16: one partial epoch
    assert steps.code == 0, steps.err
    assert bars == [1]  # the progress bar's epochs, not the default 5
    tiny = [*TINY[:6], "--train-images", "32", "--val-images", "8", *TINY[10:]]
    runs = json.loads(cli("train", "b0", *tiny, "--epochs", "1", "--repeats", "2", "--format", "json").out)
    assert 0.0 <= runs["top1_low"] <= runs["top1_mean"] <= runs["top1_high"] <= 1.0
