"""`scaler flops` and `scaler scale` (and `scaler --version`): outputs in every format and every bad-input case."""

import contextlib
import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from scaler import network_spec
from scaler.files import git_commit
from scaler.counting import count_model
from tests.conftest import TINY_BASE

ROOT = Path(__file__).resolve().parents[1]


def test_version_names_the_installed_package_and_the_checkout(cli):
    result = cli("--version")
    commit = git_commit()
    assert result.code == 0 and result.err == ""
    assert result.out.startswith(f"scaler {metadata.version('scaler')}") and result.out.count("\n") == 1
    assert commit is None or f"(git {commit[:10]}" in result.out


def test_version_from_a_checkout_that_is_not_installed(cli, monkeypatch):
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("scaler (not installed)")


def test_flops_b4_table_via_console_script(console_script):
    result = console_script("flops", "b4")
    assert result.code == 0, result.err
    assert "19,341,616" in result.out
    assert "4.3938" in result.out  # MACs G
    assert "8.7875" in result.out  # FLOPs G = 2 x MACs
    assert "4.2B" in result.out and "+4.6%" in result.out  # paper's printed figure and deviation
    assert "fvcore counts 0 for" in result.out
    assert result.err == ""  # no fvcore warnings spill onto the terminal


def test_flops_all_json_has_exact_integers(cli):
    result = cli("flops", "all", "--format", "json")
    assert result.code == 0
    rows = json.loads(result.out)
    assert [r["model"] for r in rows] == [f"b{i}" for i in range(8)]
    assert rows[0]["params"] == 5_288_548 and rows[0]["macs"] == 385_814_752
    assert rows[7]["params"] == 66_347_960
    assert rows[7]["flops"] == 2 * rows[7]["macs"]
    # the paper's figures are counts too: 5300000, not 5300000.0 (pandas holds them as floats)
    assert type(rows[0]["paper_params"]) is int and type(rows[0]["paper_macs"]) is int
    table = " ".join(cli("flops", "all").out.split())
    assert "fvcore counts 0 for (over the 8 models): " in table  # summed over the presets, and said so
    resnet = cli("flops", "resnet50").out  # 4.0892 G against 4.09B: -0.02%, shown unsigned
    assert " 0.0% " in resnet and "-0.0%" not in resnet


def test_counts_beside_blanks_stay_integers_in_json_and_csv(cli):
    """A preset column is blank where phi has no preset, so pandas holds it as floats; JSON
    and CSV still write its counts as integers, alike."""
    rows = json.loads(cli("scale", "--phi", "8-9", "--format", "json").out)
    assert [type(r["preset_params"]) for r in rows] == [int, type(None)]  # B8 is a preset, phi 9 is not
    assert all(type(r[key]) is int for r in rows for key in ("preset_resolution", "preset_params", "preset_macs") if r[key] is not None)
    table = list(csv.DictReader(io.StringIO(cli("scale", "--phi", "8-9", "--format", "csv").out)))
    assert all("." not in r[key] for r in table for key in ("preset_resolution", "preset_params", "preset_macs"))


def test_flops_custom_csv_and_by_stage(cli):
    result = cli("flops", "--width", "1.2", "--depth", "1.4", "--resolution", "300", "--format", "csv")
    assert result.code == 0
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 1
    # Same multipliers and resolution as B3: same network.
    assert int(rows[0]["params"]) == 12_233_232
    assert rows[0]["paper_macs"] == ""  # custom models have no published figure
    # a preset's own multipliers and resolution, spelled out, are the preset: its paper figures stay
    for spelled in (["--width", "1.0"], ["--depth", "1.0", "--resolution", "224"]):
        same = json.loads(cli("flops", "b0", *spelled, "--format", "json").out)[0]
        assert (same["paper_params"], same["paper_macs"]) == (5_300_000, 390_000_000), spelled
    changed = json.loads(cli("flops", "b0", "--width", "1.1", "--format", "json").out)[0]
    assert changed["paper_macs"] is None and changed["params"] != 5_288_548

    # machine formats stay one document: the stage rows replace the totals, and sum to them
    models = json.loads(cli("flops", "b0", "--format", "json").out)
    result = cli("flops", "b0", "--by-stage", "--format", "json")
    assert result.code == 0
    stages = json.loads(result.out)
    assert [s["part"] for s in stages][:2] == ["stem", "stage1"]
    assert sum(s["params"] for s in stages) == models[0]["params"] == 5_288_548
    assert sum(s["macs"] for s in stages) == models[0]["macs"]
    rows = list(csv.DictReader(io.StringIO(cli("flops", "b0", "--by-stage", "--format", "csv").out)))
    assert [r["part"] for r in rows] == [s["part"] for s in stages]


def test_an_overridden_preset_is_labelled_with_what_changed(cli):
    rows = json.loads(cli("flops", "b4", "--width", "1.0", "--depth", "1.0", "--resolution", "224", "--format", "json").out)
    assert rows[0]["model"] == "b4 (w1 d1)" and rows[0]["params"] == 5_288_548  # B0's network, not B4
    rows = json.loads(cli("flops", "b4", "--classes", "10", "--format", "json").out)
    assert rows[0]["model"] == "b4 (10 classes)" and rows[0]["paper_params"] is None
    assert json.loads(cli("flops", "b0", "--classes", "1", "--format", "json").out)[0]["model"] == "b0 (1 class)"
    assert json.loads(cli("flops", "b4", "--width", "1.4", "--format", "json").out)[0]["model"] == "b4"  # its own width
    hair = json.loads(cli("flops", "b0", "--width", "1.0000001", "--format", "json").out)[0]
    assert hair["model"] == "b0 (w1.0000001)" and hair["paper_macs"] is None  # not 'b0 (w1)', which reads as b0


def test_a_vanishing_depth_keeps_one_block_per_stage(cli):
    """The official ceil(depth x repeats) is >= 1 for any depth > 0; rounding the product to 6
    places first made a depth of 4e-7 a network without stages (a traceback)."""
    tiny = cli("flops", "--depth", "4e-7", "--format", "json")
    assert tiny.code == 0, tiny.err
    one_block = json.loads(cli("flops", "--depth", "0.01", "--format", "json").out)[0]  # ceil(0.01 x 4) = 1 in every stage
    assert (json.loads(tiny.out)[0]["params"], json.loads(tiny.out)[0]["macs"]) == (one_block["params"], one_block["macs"])


def test_flops_overrides_and_markdown(cli):
    result = cli("flops", "b0", "--resolution", "128", "--classes", "10", "--format", "markdown")
    assert result.code == 0
    assert result.out.startswith("**Params and MACs**")
    assert "| b0 (10 classes) | 128 |" in result.out  # no longer the preset: named with what changed
    assert "0.39B" not in result.out  # published figures only for the preset as published


def test_the_base_resolution_is_phi_0_s_as_given(cli):
    rows = json.loads(cli("scale", "--phi", "0-1", "--base-resolution", "226", "--format", "json").out)
    assert [r["resolution"] for r in rows] == [226, 4 * math.floor(226 * 1.15 / 4 + 0.5)]


def test_scale_family(cli):
    result = cli("scale", "--phi", "0-2", "--format", "json")
    assert result.code == 0
    rows = json.loads(result.out)
    assert [r["phi"] for r in rows] == [0, 1, 2]
    assert [(r["base"], r["alpha"], r["beta"], r["gamma"]) for r in rows] == [("b0", 1.2, 1.1, 1.15)] * 3  # the title's facts, for programs
    assert rows[0]["macs"] == 385_814_752 and rows[0]["macs_ratio"] == 1.0
    assert rows[1]["resolution"] == 256  # 224 * 1.15 = 257.6 -> nearest multiple of 4
    assert rows[1]["nominal_ratio"] == pytest.approx(1.2 * 1.1**2 * 1.15**2)
    assert rows[1]["preset"] == "b1" and rows[1]["preset_params"] == 7_794_184
    # phi = 1: B0 at width 1.1, depth 1.2, 256 px (B2's network at B1's step of resolution)
    assert (rows[1]["params"], rows[1]["macs"]) == (9_109_994, 859_853_760)
    assert rows[1]["macs_ratio"] == pytest.approx(859_853_760 / 385_814_752)
    # multipliers as a person writes them, not 1.1 ** 2 = 1.2100000000000002
    assert (rows[2]["depth_mult"], rows[2]["width_mult"], rows[2]["nominal_ratio"]) == (1.44, 1.21, 3.6874368729)
    for row, (width, depth) in zip(rows[1:], [(1.1, 1.2), (1.1**2, 1.2**2)]):  # each checked against a direct count
        count = count_model(network_spec(width=width, depth=depth), row["resolution"])
        assert (row["params"], row["macs"]) == (count.params, count.macs)
    assert rows[2]["resolution"] == 4 * math.floor(224 * 1.15**2 / 4 + 0.5)
    result = cli("scale", "--phi", "1,3")
    assert result.code == 0 and "b3" in result.out
    markdown = cli("scale", "--phi", "1", "--format", "markdown").out
    header = next(line for line in markdown.splitlines() if line.startswith("| phi"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert len(cells) == len(set(cells)) and cells[-6:] == ["official", "d'", "w'", "r'", "params'", "MACs G'"]  # one name per column


def test_scale_lays_out_the_family_of_any_base_at_its_own_size(cli):
    """--base: ResNet-50's family, counted as `flops` counts each network; the base at its own
    width, depth and native resolution (B4: 380 px); no official columns but B0's."""
    resnet = json.loads(cli("scale", "--base", "resnet50", "--phi", "0-1", "--format", "json").out)
    assert resnet[0]["params"] == 25_557_032 and resnet[0]["resolution"] == 224  # torchvision's ResNet-50
    count = count_model(network_spec("resnet50", width=1.1, depth=1.2), 256)
    assert (resnet[1]["params"], resnet[1]["macs"]) == (count.params, count.macs)
    assert resnet[1]["macs_ratio"] == pytest.approx(count.macs / resnet[0]["macs"]) and resnet[1]["macs_ratio"] != resnet[1]["nominal_ratio"]
    assert not any(key.startswith("preset") for key in resnet[0])
    b4 = json.loads(cli("scale", "--base", "efficientnet-B4", "--phi", "0-1", "--format", "json").out)
    assert (b4[0]["resolution"], b4[0]["params"]) == (380, 19_341_616)  # B4 as released
    count = count_model(network_spec("b4", width=1.4 * 1.1, depth=1.8 * 1.2), 4 * math.floor(380 * 1.15 / 4 + 0.5))
    assert (b4[1]["params"], b4[1]["macs"]) == (count.params, count.macs)
    table = cli("scale", "--base", "resnet50", "--phi", "1", "--base-resolution", "128")
    assert table.code == 0 and "Compound family of resnet50" in table.out and "official" not in table.out
    assert "resolution = 128 x gamma^phi" in table.out and " 148 " in table.out  # 128 x 1.15 = 147.2 -> 148
    assert "own depth" not in table.out  # ResNet-50's own multipliers are 1: d and w are its absolute ones
    b4_table = " ".join(cli("scale", "--base", "b4", "--phi", "1").out.split())
    assert "d and w multiply b4's own depth 1.8 and width 1.4" in b4_table  # what `flops b4 --width --depth` takes is the product


def test_scale_s_default_phis_stop_where_the_family_can_no_longer_be_built(cli):
    """A depth-only step (alpha 2, as `scale --from` takes a depth-heavy best) reaches depth 32
    at phi 5: the default 0-7 lays out 0-4 and says why; a --phi that asks for 5 is refused."""
    args = ["scale", "--alpha", "2", "--beta", "1", "--gamma", "1", "--base", TINY_BASE, "--base-resolution", "32"]
    result = cli(*args, "--format", "json")
    assert result.code == 0 and [row["phi"] for row in json.loads(result.out)] == [0, 1, 2, 3, 4]
    assert result.err == "note: phi 5-7 of the default 0-7 left out: phi 5 gives depth 2^5 = 32, more than 16\n"
    asked = cli(*args, "--phi", "0-7")
    assert asked.code == 2 and asked.err == "error: --phi: phi 5 gives depth 2^5 = 32, more than 16; lower phi or alpha\n"
    alone = cli("scale", "--alpha", "20", "--beta", "1", "--gamma", "1")  # past the limit at phi 1: alpha's fault, whatever phi
    assert alone.code == 2 and alone.err.startswith("error: --alpha: phi 1 gives depth 20^1 = 20, more than 16")
    assert cli("scale", "--base", TINY_BASE, "--base-resolution", "32", "--format", "csv").err == ""  # the paper's step fits 0-7


@pytest.mark.parametrize(
    "args, message",
    [
        (["--phi", "0-2,16"], "phi 16 gives depth 1.2^16 = 18.49, more than 16"),
        (["--gamma", "2", "--phi", "1-4"], "too large to count here: its stage1 sees a 48x1792x1792 feature map"),
    ],
)
def test_scale_refuses_a_bad_phi_before_counting_any(cli, monkeypatch, args, message):
    """The last phi of a range is checked before the first is counted (counting phi 0-15 took
    over 2 minutes before the refusal)."""
    import scaler.reports

    counted = []
    monkeypatch.setattr(scaler.reports, "count_model", lambda *a: counted.append(a))
    result = cli("scale", *args)
    assert result.code == 2 and message in result.err and counted == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["flops", "b9"], "unknown variant 'b9'"),
        (["flops", "--width", "0"], "--width 0 is not allowed"),
        (["flops", "--depth", "-1"], "--depth -1 is not allowed"),
        (["flops", "b0", "--resolution", "0"], "resolution 0"),
        (["flops", "b0", "--resolution", "100000"], "resolution 100000"),
        (["flops", "b0", "--classes", "0"], "--classes 0 is not allowed"),
        (["flops", "b0", "--format", "xml"], "'xml'"),
        (["flops", "--resolution", "abc"], "--resolution"),
        (["scale", "--phi", "-1"], "--phi -1 is not allowed"),
        (["scale", "--phi", "3-1"], "phi range 3-1 runs backwards; write it low to high, as 1-3"),
        (["scale", "--phi", "99-1"], "every phi must be in 0..64"),  # never advised as 1-99
        (["scale", "--phi", "a"], "malformed"),
        (["scale", "--base", "b12"], "error: --base: unknown variant 'b12'; allowed: b0,"),
        (["report"], "error: Missing argument 'FOLDER'. See `scaler report --help`."),
        (["scale", "--alpha", "0.9"], "--alpha 0.9 is not allowed"),
        (["scale", "--beta", "0.5"], "--beta 0.5 is not allowed"),
        (["scale", "--gamma", "0"], "--gamma 0 is not allowed"),
        # a coefficient past the limit in one step is named, not --phi, at any phi; past it in five steps, --phi
        (["scale", "--alpha", "20", "--phi", "2"], "error: --alpha: phi 2 gives depth 20^2 = 400, more than 16; lower phi or alpha"),
        (["scale", "--gamma", "20", "--phi", "3"], "error: --gamma: phi 3 gives resolution 224 x 20^3"),
        (["scale", "--gamma", "2", "--phi", "5"], "error: --phi: phi 5 gives resolution 224 x 2^5 = 7168 px"),
        (["scale", "--beta", "1e9", "--phi", "1"], "error: --beta: phi 1 gives width 1e+09^1 = 1e+09, more than 16; lower phi or beta"),
        (["scale", "--alpha", "20", "--phi", "0-3"], "error: --alpha: phi 1 gives depth 20^1 = 20"),
        (["scale", "--gamma", "1e9", "--phi", "1"], "error: --gamma: phi 1 gives resolution 224 x 1e+09^1"),
        (["scale", "--beta", "2", "--phi", "5"], "error: --phi: phi 5 gives width 2^5 = 32, more than 16; lower phi or beta"),
        # 4096 x 1.00048828125 = 4098 px rounds to 4100: named as rounded, not as a size never asked for
        (["scale", "--gamma", "1.00048828125", "--phi", "1", "--base-resolution", "4096"],
         "--gamma: phi 1 gives resolution 4096 x 1.00049^1 = 4098 px, rounded to 4100, more than 4096; lower phi or gamma"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, args, message):
    result = cli(*args)
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_bad_input_via_console_script_has_no_traceback(console_script):
    result = console_script("flops", "b9")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "error: unknown variant 'b9'; allowed: b0, b1, b2, b3, b4, b5, b6, b7, b8, l2, resnet50, mobilenetv2, "
        "or a factory package.module:make or path/to/file.py:make"
    ]


def test_python_dash_m_runs_the_same_command_line(tmp_path):
    """`python -m scaler` serves a checkout that is not installed (a GPU machine without
    network runs it so): same program name, same one-line error and exit code."""
    proc = subprocess.run([sys.executable, "-m", "scaler", "flops", "b9"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown variant 'b9'") and len(proc.stderr.splitlines()) == 1
    help_text = subprocess.run([sys.executable, "-m", "scaler", "--help"], capture_output=True, text=True,
                               cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120).stdout
    assert "Usage: scaler " in help_text


HEAVY = ("torch", "fvcore", "pandas", "numpy", "optuna", "scipy.stats", "matplotlib", "sqlalchemy")


@pytest.mark.parametrize("args, refusal", [
    ([], None), (["search", "--help"], None), (["calibrate", "--help"], None), (["compare", "--help"], None), (["worker", "--help"], None),
    (["search", "--epochs", "abc"], "--epochs"), (["flops", "--nope"], "--nope"), (["nope"], "nope"),
    # values the space's and training's own checks refuse, before the library loads
    (["search", "--phi", "0"], "error: --phi 0 is not allowed; a search needs 0 < phi <= 64"),
    (["candidates", "--mode", "foo"], "error: --mode 'foo' is not allowed; use one of grid, surface"),
    (["calibrate", "--batch-size", "1"], "error: --batch-size 1 is not allowed; it must be an integer >= 2"),
    (["compare", "--epochs", "2", "--steps", "9"], "error: --epochs 2 and --steps 9 both set how long to train; give one"),
    (["train", "b0", "--optimizer", "foo"], "error: --optimizer 'foo' is not allowed; choose one of sgd, rmsprop, adamw"),
    # the process's flags, whose checks need no torch (they answered after it, in 2 s)
    (["search", "--workers", "0"], "error: --workers 0 is not allowed; it must be an integer >= 1"),
    (["compare", "--repeats", "0"], "error: --repeats 0 is not allowed; it must be an integer from 1 to 1000"),
    (["train", "--repeats", "1001"], "error: --repeats 1001 is not allowed; it must be an integer from 1 to 1000"),
    (["calibrate", "--device", "tpu"], "error: --device 'tpu' is not allowed; choose one of auto, cpu, cuda, cuda:N, mps"),
    (["worker", "--storage", "sqlite:///s.db", "--study", "s", "--device", "cuda:x"],
     "error: --device 'cuda:x' is not allowed; choose one of auto, cpu, cuda, cuda:N, mps"),
    (["search", "--threads", "0"], "error: --threads 0 is not allowed; it must be an integer >= 1"),
])
def test_help_and_a_refused_flag_answer_without_the_library(args, refusal):
    """Every command and worker process imports scaler.cli, and `--help`, a flag the parser
    refuses or a bad value of the candidate space, of training or of the process (device,
    threads, workers, repeats) answers at once: torch,
    fvcore, pandas, numpy, optuna, scipy.stats, matplotlib and SQLAlchemy (together about 2 s
    on 2 cores) are imported when a command runs, and only where it needs them."""
    code = ("import sys, scaler.cli; code = scaler.cli.main(sys.argv[1:]); "
            f"print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    expected = "0" if args[-1:] == ["--help"] else "2"  # `scaler` alone shows the help and exits 2
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == f"{expected} []", proc.stdout + proc.stderr
    if refusal is not None:
        assert refusal in proc.stderr and (not refusal.startswith("error: ") or proc.stderr == refusal + "\n"), proc.stderr


def test_the_help_names_every_family_s_presets_and_a_command_imports_torch_with_ctrl_c_held(cli, monkeypatch):
    """The presets in `flops` and `train` help come from the families (a new family's appear);
    a command imports torch with Ctrl-C held back, and one pressed meanwhile is answered before
    the command does anything."""
    from scaler.models import presets_by_family

    for command in ("flops", "train"):
        shown = " ".join(cli(command, "--help").out.split())
        assert presets_by_family() in shown and "{presets}" not in shown
    from scaler import process

    @contextlib.contextmanager
    def pressed_meanwhile():
        yield [signal.SIGINT]

    monkeypatch.setattr(process, "interrupts_held", pressed_meanwhile)
    result = cli("flops", "b0")
    assert result.code == 130 and result.out == "" and result.err == "interrupted\n"


def test_the_studies_and_their_results_need_no_command_line_or_terminal_library():
    """The library works without the CLI: defining, running and writing a study's results
    imports neither typer nor rich (a caller passes run_study a progress display, or reads log lines)."""
    code = ("import sys, scaler.experiments.search, scaler.experiments.calibration, scaler.experiments.comparison, "
            "scaler.study.runner, scaler.study.results, scaler.reports, scaler.training; print(sorted(m for m in ('typer', 'rich', 'scaler.cli') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "[]\n", proc.stdout + proc.stderr


def test_compare_phis_reads_as_one_number_and_a_range_is_refused_with_what_it_takes(cli):
    """`--phis 1-3` was a natural guess for phi = 1..3; the help names the value K."""
    assert "--phis K Compare at phi = 1, 2, ..., K (nominal FLOPs T^phi): one number, not a range." in " ".join(cli("compare", "--help").out.split())
    result = cli("compare", "--phis", "1-3")
    assert (result.code, result.err) == (2, "error: Invalid value for '--phis': '1-3' is not a whole number; see `scaler compare --help`\n")


def test_every_help_example_stands_on_a_line_of_its_own(cli, monkeypatch):
    """Wrapped to the terminal, examples broke inside a flag ('--alpha-' / 'range') and copied
    no longer ran: each stands whole on its own line, on a narrow terminal too."""
    import typer

    from scaler.cli import app

    monkeypatch.setenv("COLUMNS", "60")
    root = typer.main.get_command(app)
    for name, command in [("", root), *root.commands.items()]:  # type: ignore[attr-defined]
        lines = [line.strip() for line in cli(*filter(None, [name]), "--help").out.splitlines()]
        examples = command.epilog.partition("Examples:  ")[2].split(" · ")
        assert len(examples) >= 2 and all(example in lines for example in examples), (name, lines[-6:])


def test_help_has_examples_and_reads_as_text(cli):
    for command in ("search", "calibrate", "candidates", "compare", "flops", "report", "scale", "train", "worker"):
        result = cli(command, "--help")
        assert result.code == 0
        assert "Examples" in result.out
        assert "<bool>" not in result.out and "│" not in result.out  # plain help: no boxes, no types on flags
