"""The option groups declared once in `scaler.cli.options` reach every command that takes
them, in the help, and on to the library (a bad value in any group is refused by name)."""

import inspect

import pytest
import typer

from scaler.cli import options
from scaler.cli.app import app
from scaler.cli.calibrate import calibrate
from scaler.cli.candidates import candidates
from scaler.cli.compare import compare
from scaler.cli.search import search
from scaler.cli.train import train

GROUPS = {
    search: (options.SPACE_OPTIONS, options.BASE_OPTIONS, options.DATA_OPTIONS, options.TRAIN_OPTIONS),
    calibrate: (options.SPACE_OPTIONS, options.BASE_OPTIONS, options.DATA_OPTIONS, options.EPOCH_TRAIN_OPTIONS),
    compare: (options.BASE_OPTIONS, options.DATA_OPTIONS, options.TRAIN_OPTIONS),
    train: (options.DATA_OPTIONS, options.TRAIN_OPTIONS),
    candidates: (options.SPACE_OPTIONS,),
}


@pytest.mark.parametrize("command", list(GROUPS), ids=lambda c: c.__name__)
def test_each_command_has_its_groups_once_and_no_catch_all(command):
    parameters = inspect.signature(command).parameters
    names = [p.name for group in GROUPS[command] for p in group]
    assert set(names) <= set(parameters)
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())  # typer sees only options
    click_command = typer.main.get_command(app).commands[command.__name__]
    flags = [flag for param in click_command.params for flag in param.opts + param.secondary_opts]
    assert len(flags) == len(set(flags))  # no flag spelled twice (a group's and the command's own)


@pytest.mark.parametrize(("args", "message"), [
    (["search", "--epochs", "0", "--phi", "1", "--root", "{tmp}"], "--epochs 0 is not allowed"),
    (["calibrate", "--base-width", "-1", "--root", "{tmp}"], "--base-width -1 is not allowed"),
    (["compare", "--val-fraction", "1.5", "--root", "{tmp}"], "--val-fraction 1.5 is not allowed"),
    (["train", "b0", "--batch-size", "0"], "--batch-size 0 is not allowed"),
    (["candidates", "--tolerance", "-1"], "tolerance"),
    (["compare", "--clip-grad-norm", "-1", "--root", "{tmp}"], "--clip-grad-norm -1 is not allowed"),
    # a cap of infinity caps nothing, and search.json could not write it as JSON
    (["search", "--max-seconds", "inf", "--root", "{tmp}"], "--max-seconds inf is not allowed; it must be a finite number > 0"),
    (["train", "b0", "--max-seconds", "0"], "--max-seconds 0 is not allowed"),
    (["train", "b0", "--val-fraction", "0"], "--val-fraction 0 is not allowed; it must be in (0, 1)"),
    # a mistyped length would train for years: one line, before anything is counted or created
    (["search", "--epochs", "10001", "--root", "{tmp}"], "--epochs 10001 is not allowed; it must be an integer from 1 to 10000"),
    (["train", "b0", "--epochs", "99999999999999999999"], "--epochs 99999999999999999999 is not allowed"),
    (["calibrate", "--reference-factor", "1e300", "--root", "{tmp}"],
     "--reference-factor 1e300 is not allowed; it must be > 0 and give at most 10,000 epochs (the proxy trains 5)"),
    (["calibrate", "--reference-epochs", "20000", "--root", "{tmp}"], "--reference-epochs 20000 is not allowed"),
    (["calibrate", "--try", "epochs=1000000", "--root", "{tmp}"], "epochs = 1000000 is not allowed"),
])
def test_a_bad_value_in_a_shared_group_is_refused_by_each_command(cli, tmp_path, args, message):
    result = cli(*(a.format(tmp=tmp_path) for a in args))
    assert result.code == 2, result.out + result.err
    assert message in result.err and len(result.err.strip().splitlines()) == 1


def test_with_options_refuses_a_command_that_cannot_receive_them():
    def command(name: str = "x") -> None: ...

    with pytest.raises(TypeError, match=r"command needs a \*\* parameter"):
        options.with_options(options.TRAIN_OPTIONS)(command)


def test_search_checks_the_space_flags_before_the_others(cli, tmp_path):
    result = cli("search", "--epochs", "0", "--tolerance", "-1", "--root", str(tmp_path))
    assert result.code == 2 and "tolerance" in result.err and "epochs" not in result.err


def test_a_clip_of_zero_on_the_command_line_is_no_clipping():
    flags = {p.name: p.default for p in options.TRAIN_OPTIONS}
    assert options.train_config(**{**flags, "clip_grad_norm": 0.0}).clip_grad_norm is None
    assert options.train_config(**{**flags, "clip_grad_norm": 2.5}).clip_grad_norm == 2.5
