"""Any network as the base: a user's factory file driven through flops, candidates, search and
train, and every way a factory can be broken (one line naming it, exit 2, nothing trained)."""

from __future__ import annotations

import json
import runpy
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

from scaler.candidates import ProxyBase
from scaler.counting import count_model
from scaler.errors import UsageError
from scaler.models import build_model, check_network, network_spec
from tests.conftest import TINY_NET_FILE

TINY_NET = TINY_NET_FILE.read_text()  # the factory file a user would write

TRAIN = ["--train-images", "32", "--val-images", "16", "--batch-size", "16", "--epochs", "1",
         "--threads", "1", "--device", "cpu"]  # fmt: skip


@pytest.fixture
def net(tmp_path: Path) -> str:
    """A reference to the tiny factory, written into its own file."""
    path = tmp_path / "tinynet.py"
    path.write_text(TINY_NET)
    return f"{path}:make"


def test_flops_counts_exactly_what_the_factory_returns(cli, net):
    result = cli("flops", net, "--width", "1.2", "--resolution", "128", "--format", "json")
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    assert row["model"] == f"{net} (w1.2)" and row["resolution"] == 128 and row["width"] == 1.2  # the factory's "preset" is width 1
    model = runpy.run_path(net.rpartition(":")[0])["make"](1.2, 1.0, 1000)
    assert row["params"] == sum(p.numel() for p in model.parameters())
    by_op = FlopCountAnalysis(model.eval(), torch.randn(1, 3, 128, 128)).by_operator()
    assert row["macs"] == by_op["conv"] + by_op["linear"]
    default = json.loads(cli("flops", net, "--format", "json").out)[0]
    assert default["resolution"] == 224 and default["width"] == 1.0  # a reference's "preset"


def test_a_factory_that_reads_a_tensor_while_it_builds_is_counted(cli, tmp_path):
    """Counting builds a factory on the meta device first (no memory for weights); one that
    calls .item() there cannot, and is built on the CPU instead of being called broken."""
    path = tmp_path / "reads.py"
    path.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def make(width=1.0, depth=1.0, num_classes=1000):\n"
        "    c = int(torch.tensor(16.0 * width).round().item())\n"
        "    return nn.Sequential(nn.Conv2d(3, c, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))\n"
    )
    result = cli("flops", f"{path}:make", "--resolution", "32", "--format", "json")
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    # conv 3->16 3x3 (448 params) at 30x30 outputs, linear 16->1000 (17,000 params)
    assert row["params"] == 448 + 17_000 and row["macs"] == 16 * 30 * 30 * 27 + 16 * 1000


def guarded_factory(path: Path, refuses: str, message: str) -> Path:
    """The tiny factory written at `path`, raising ValueError(`message`) where `refuses` holds
    of its arguments: a user's network that can be made at some sizes only."""
    path.write_text(TINY_NET + "\n\n_plain = make\n\n\ndef make(width, depth, num_classes):\n"
                    f"    if {refuses}:\n        raise ValueError({message})\n"
                    "    return _plain(width, depth, num_classes)\n")
    return path


def test_a_factory_is_built_only_at_the_sizes_asked(cli, tmp_path):
    """flops --width 0.5 and candidates (base width 0.5) built the factory at width 1 as well,
    to compare with the preset or read its own multipliers: a factory that cannot make
    width 1 was refused for a network no one asked for."""
    path = guarded_factory(tmp_path / "half.py", "width > 0.75", "f'width {width} too large'")
    flops = cli("flops", f"{path}:make", "--width", "0.5", "--resolution", "32", "--format", "json")
    assert flops.code == 0, flops.err
    assert json.loads(flops.out)[0]["params"] == count_model(network_spec(f"{path}:make", width=0.5), 32).params
    listed = cli("candidates", "--base", f"{path}:make", "--base-width", "0.5", "--base-resolution", "32",
                 "--alpha-range", "1:1.2:0.2", "--beta-range", "1", "--gamma-range", "1", "--tolerance", "2", "--format", "json")
    assert listed.code == 0, listed.err


def test_a_factory_with_a_plain_tensor_attribute_is_counted(tmp_path):
    """Counting builds a factory's network on the meta device; a tensor kept as a plain
    attribute (not a buffer) stayed there, and the count failed ('Tensor on device meta is not
    on the expected device cpu', exit 1) in flops, candidates and search."""
    (tmp_path / "plain.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Scaled(nn.Module):
            def __init__(self, classes):
                super().__init__()
                self.linear = nn.Linear(3, classes)
                self.scale = torch.ones(3)

            def forward(self, x):
                return self.linear(x.mean((2, 3)) * self.scale)

        def make(width, depth, num_classes):
            return Scaled(num_classes)
        """))
    count = count_model(network_spec(f"{tmp_path / 'plain.py'}:make", num_classes=10), 32)
    assert (count.params, count.macs) == (40, 30)  # the linear layer's 3 x 10 weights and 10 biases; 3 x 10 multiply-adds


def test_flops_builds_a_factory_for_the_classes_asked_only(cli, tmp_path):
    """A factory made for 10 classes is counted with --classes 10; it was first built and
    checked at 1000 classes, to learn whether it was a preset as published, and refused."""
    path = guarded_factory(tmp_path / "ten.py", "num_classes != 10", "f'made for 10 classes, not {num_classes}'")
    result = cli("flops", f"{path}:make", "--classes", "10", "--resolution", "32", "--format", "json")
    assert result.code == 0, result.err
    [row] = json.loads(result.out)
    model = runpy.run_path(str(path))["make"](1.0, 1.0, 10)
    assert row["classes"] == 10 and row["params"] == sum(p.numel() for p in model.parameters())
    refused = cli("flops", f"{path}:make", "--resolution", "32")  # 1000 classes, as the default asks
    assert refused.code == 2 and "made for 10 classes, not 1000" in refused.err


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_by_stage_of_a_factory_is_refused_not_an_empty_document(cli, net, fmt):
    """scaler knows no stem, stages or head of a factory's network: one line, exit 2, nothing
    printed (the help promises each model's rows sum to its totals)."""
    result = cli("flops", net, "--by-stage", "--format", fmt)
    assert result.code == 2 and result.out == ""
    assert result.err == (f"error: --by-stage: {net} is counted as a whole (scaler does not know its stem, stages and head); "
                          "drop --by-stage for its totals\n")


def test_candidates_scale_the_factory(cli, net):
    args = ["--alpha-range", "1:1.2:0.2", "--beta-range", "1:1.1:0.1", "--gamma-range", "1:1.2:0.1", "--tolerance", "0.5"]
    result = cli("candidates", "--base", net, "--base-width", "1", "--base-resolution", "32", *args, "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert len(rows) == 4 and [r["candidate"] for r in rows] == [0, 1, 2, 3]  # as a search's results.csv names it
    wide = next(r for r in rows if r["width_mult"] == 1.1 and r["depth_mult"] == 1.0)
    assert wide["params"] == sum(p.numel() for p in build_model(net, width=1.1, num_classes=10).parameters())


def test_what_a_factory_prints_goes_to_stderr_not_into_a_document(cli, tmp_path):
    """A factory that prints, as it is imported and as it builds, left those lines above the
    header of `--format csv` on stdout (a new user's walkthrough)."""
    (tmp_path / "loud.py").write_text('print("importing loud")\n' + TINY_NET.replace(
        "def make(", 'def make(*args):\n    print("building", *args)\n    return _make(*args)\n\n\ndef _make('))
    result = cli("candidates", "--base", f"{tmp_path / 'loud.py'}:make", "--base-resolution", "32", "--phi", "1e-9", "--format", "csv")
    assert result.code == 0, result.err
    assert result.out.startswith("candidate,alpha,") and "importing" not in result.out and "building" not in result.out
    assert "importing loud\n" in result.err and "building 0.5 1.0 10\n" in result.err
    assert "building 1.0 1.0" not in result.err  # never at width 1, which no candidate uses


def test_micro_search_and_train_on_the_factory(cli, net, tmp_path):
    root = tmp_path / "searches"
    result = cli(
        "search", "--base", net, "--base-width", "0.5", "--base-resolution", "32",
        "--alpha-range", "1:1.2:0.2", "--beta-range", "1", "--gamma-range", "1.2", "--tolerance", "0.6",
        *TRAIN, "--root", root, "--quiet", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert f"warning: --zero-init changes nothing in {net}" in result.err  # the search's default start
    [folder] = [f for f in root.iterdir() if not f.name.startswith(".")]  # beside .cache
    assert folder.name.startswith("phi1-grid-tinynet-make-r32-w0.5-")  # the reference, shortened
    frame = pd.read_csv(folder / "results.csv")
    assert len(frame) == 2 and set(frame["state"]) == {"complete"}

    trained = cli("train", net, "--width", "0.5", "--resolution", "32", *TRAIN, "--format", "json")
    assert trained.code == 0, trained.err
    assert json.loads(trained.out)["state"] == "complete"


def test_a_lazy_factory_is_checked_with_its_parameters_shaped_at_the_resolution(tmp_path):
    """A lazy module's parameters take their shape in the first forward pass: the check that a
    factory still builds what a study counted (`ProxyBase.check_builds`) runs one, as the
    count did, rather than fail on a parameter with no size."""
    path = tmp_path / "lazynet.py"
    path.write_text("from torch import nn\n\ndef make(width, depth, num_classes):\n"
                    "    return nn.Sequential(nn.Conv2d(3, round(8 * width), 3), nn.Flatten(), nn.LazyLinear(num_classes))\n")
    base = ProxyBase(f"{path}:make", resolution=16, width=1.0)
    counted = base.scaled(1.0, 1.0, 1.0, 1.0)[1].params
    assert counted == 3 * 8 * 9 + 8 + (8 * 14 * 14 + 1) * 10  # the linear layer's inputs come from 16 px
    # the shaping is not counted: its initialisation ('uniform_') was traced as an operator fvcore counts 0 for
    assert count_model(base.spec(), 16).unsupported_ops == {}
    base.check_builds(1.0, 1.0, 16, counted)
    with pytest.raises(UsageError, match=f"builds {counted:,} parameters when called with width=1, depth=1, num_classes=10, where the study counted"):
        base.check_builds(1.0, 1.0, 16, counted + 1)
    # a network that cannot take the resolution is refused as the --base's, in one line
    with pytest.raises(UsageError, match=r"its network fails on a \(1, 3, 2, 2\) input: RuntimeError: ") as refused:
        base.check_builds(1.0, 1.0, 2, counted)
    assert refused.value.param == "base"


def test_zero_init_of_a_factory_with_no_block_to_start_at_zero_is_said(cli, net, tmp_path):
    """--zero-init (a search's default) calls zero_init_last() on the blocks that have it; a
    factory's own modules rarely do, and the option then changed nothing without a word."""
    for start, said in (("--zero-init", True), ("--standard-init", False)):
        result = cli("train", net, "--resolution", "16", *TRAIN, start, "--format", "json")
        assert result.code == 0, result.err
        assert ("--zero-init changes nothing in" in result.err) is said, (start, result.err)
    assert ProxyBase(net, 32, 0.5, zero_init=False).zero_init_note() is None
    assert "none of its modules has a zero_init_last() method" in ProxyBase(net, 32, 0.5).zero_init_note()
    residual = tmp_path / "residual.py"  # a block that can start at zero: nothing to say
    residual.write_text(TINY_NET + textwrap.dedent("""
        class Last(nn.BatchNorm2d):
            def zero_init_last(self):
                nn.init.zeros_(self.weight)

        def make_residual(width, depth, num_classes):
            net = make(width, depth, num_classes)
            net[0][1] = Last(net[0][1].num_features)
            return net
        """))
    assert ProxyBase(f"{residual}:make_residual", 32, 0.5).zero_init_note() is None
    assert ProxyBase("b0").zero_init_note() is None  # scaler's own blocks all can


def test_a_lazy_factory_trains(cli, tmp_path):
    """Lazy modules get their shapes from one forward pass at the training's resolution before
    anything reads them (the memory check, the layout, the optimizer): every training failed
    with 'Attempted to use an uninitialized parameter' before."""
    path = tmp_path / "lazynet.py"
    path.write_text("from torch import nn\n\ndef make(width, depth, num_classes):\n    return nn.Sequential(nn.LazyConv2d("
                    "round(8 * width), 3, padding=1), nn.LazyBatchNorm2d(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), "
                    "nn.LazyLinear(num_classes))\n")
    result = cli("train", f"{path}:make", "--resolution", "16", *TRAIN, "--format", "json")
    assert result.code == 0, result.err
    trained = json.loads(result.out)
    assert trained["state"] == "complete" and len(trained["epochs"]) == 1 and trained["steps"] == 2  # 32 images, batch 16


def test_a_network_that_fails_in_training_is_named_and_debug_shows_where(cli, tmp_path):
    """Its check (eval mode) passes; training fails: the line named no network ('error:
    RuntimeError: boom ... (run with --debug ...)')."""
    path = tmp_path / "trainfails.py"
    path.write_text(textwrap.dedent("""\
        from torch import nn

        class Net(nn.Module):
            def __init__(self, classes):
                super().__init__()
                self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

            def forward(self, x):
                if self.training:
                    raise RuntimeError("boom in training mode")
                return self.body(x)

        def make(width, depth, num_classes):
            return Net(num_classes)
        """))
    result = cli("train", f"{path}:make", "--resolution", "16", *TRAIN)
    assert (result.code, result.err.splitlines()[-1]) == (1, f"error: training {path}:make at 16 px failed: RuntimeError: boom in training mode")
    debug = cli("--debug", "train", f"{path}:make", "--resolution", "16", *TRAIN)
    assert debug.code == 1 and f'File "{path}", line 10, in forward' in debug.err


def test_module_reference(tmp_path, monkeypatch):
    (tmp_path / "tinynet_module.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model("tinynet_module:make", depth=2.0, num_classes=3)
    assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 3)


def test_check_leaves_the_random_state_alone(net):
    """A seeded build that runs the check first must make the weights one that does not would."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    network_spec(net, num_classes=7)  # first spec of its kind: builds the network
    check_network(network_spec(net, num_classes=7), 32)  # and runs it
    assert torch.equal(torch.rand(3), expected)


BAD = {
    "import error": ("import no_such_module_for_scaler\n", "make", "cannot be imported: ModuleNotFoundError: No module named 'no_such_module_for_scaler'"),
    "syntax error": ("def make(:\n", "make", "cannot be imported: SyntaxError: "),
    "missing attribute": (TINY_NET, "build", "has no attribute 'build'"),
    "not callable": ("make = 3\n", "make", "make is an object of type int, not a callable"),
    "raises": ("def make(width, depth, num_classes):\n    raise ValueError('no width ' + str(width))\n", "make",
               "raised ValueError: no width 1.0 when called with width=1, depth=1, num_classes=1000"),
    "not a module": ("def make(width, depth, num_classes):\n    return [width]\n", "make", "returned an object of type list, not a torch.nn.Module"),
    "wrong logits": (TINY_NET.replace("nn.Linear(cin, num_classes)", "nn.Linear(cin, 5)"), "make",
                     "returns shape (1, 5) for a (1, 3, 224, 224) input; expected (1, 1000)"),  # flops' default resolution
    "forward fails": (TINY_NET.replace("nn.Flatten(), ", ""), "make", "its network fails on a (1, 3, 224, 224) input: RuntimeError: "),
    # one module for every call: a second training (a repeat, the next candidate) began from the first one's weights
    "one module": ("import torch.nn as nn\nbuilt = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1000))\n"
                   "def make(width, depth, num_classes):\n    return built\n", "make",
                   "returned a module it returned before; make() must build a new network on every call"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_factory_is_one_line_naming_it(cli, tmp_path, case):
    source, attribute, message = BAD[case]
    path = tmp_path / f"bad_{case.replace(' ', '_')}.py"
    path.write_text(textwrap.dedent(source))
    reference = f"{path}:{attribute}"
    result = cli("flops", reference)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"error: factory {reference!r}") and message in line, line


def test_a_module_that_hashes_by_value_or_not_at_all_is_told_from_another_by_identity(cli, tmp_path):
    """The check that a factory never returns one module twice compared modules by equality:
    a dataclass module (unhashable) crashed it, and one that hashes by value was refused."""
    for frozen in ("eq=True", "unsafe_hash=True"):
        path = tmp_path / f"dataclass_{frozen.split('=')[0]}.py"
        path.write_text(textwrap.dedent(f"""\
            from dataclasses import dataclass
            import torch.nn as nn

            @dataclass({frozen})
            class Net(nn.Module):
                classes: int

                def __post_init__(self):
                    super().__init__()
                    self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, self.classes))

                def forward(self, x):
                    return self.body(x)

            def make(width, depth, num_classes):
                return Net(num_classes)
            """))
        kept = build_model(f"{path}:make", num_classes=10)  # alive while the next one is built, equal to it
        assert build_model(f"{path}:make", num_classes=10) is not kept
    result = cli("flops", f"{path}:make", "--classes", "10", "--resolution", "32")  # (fvcore itself takes no unhashable module)
    assert result.code == 0, result.err


def test_debug_shows_where_in_the_factory_s_own_file_it_failed(cli, tmp_path):
    """The line in the user's file, not only scaler's frames, where the factory raises or
    fails to import; the error of its network on an input (here all torch's own modules)."""
    for case, line in (("raises", 2), ("import error", 1), ("forward fails", None)):
        source, attribute, message = BAD[case]
        path = tmp_path / f"debug_{case.replace(' ', '_')}.py"
        path.write_text(textwrap.dedent(source))
        result = cli("--debug", "flops", f"{path}:{attribute}")
        assert result.code == 2 and message in result.err.strip().splitlines()[-1]
        assert f'File "{path}", line {line}' in result.err if line else "the direct cause of the following" in result.err, result.err


@pytest.mark.parametrize(
    ("command", "reference", "message"),
    [
        ("flops", "no_such_package_for_scaler.net:make", "cannot be imported: ModuleNotFoundError"),
        ("candidates --base", "missing_file.py:make", "no file missing_file.py"),
        ("train", "net.py:", "is malformed; use package.module:factory or path/to/file.py:factory"),
    ],
)
def test_bad_reference_in_every_command(cli, tmp_path, command, reference, message):
    result = cli(*command.split(), reference, *(TRAIN if command == "train" else []))
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    flag = "--base: " if "--base" in command else ""  # a study's base is its --base's fault
    assert line.startswith(f"error: {flag}factory {reference!r}") and message in line, line


def test_search_refuses_a_bad_factory_before_creating_anything(cli, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def make(width, depth, num_classes):\n    raise RuntimeError('boom')\n")
    root = tmp_path / "searches"
    result = cli("search", "--base", f"{path}:make", *TRAIN, "--root", root)
    assert result.code == 2 and "raised RuntimeError: boom" in result.err
    assert not root.exists()


# A CIFAR network as written for 32 px: a fixed 4x4 pooling, then a linear layer sized for it.
FIXED_SIZE_NET = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, width, num_classes):
        super().__init__()
        self.channels = max(4, round(8 * width))
        self.conv = nn.Conv2d(3, self.channels, 3, stride=2, padding=1)
        self.fc = nn.Linear(self.channels * 4 * 4, num_classes)

    def forward(self, x):
        return self.fc(F.avg_pool2d(F.relu(self.conv(x)), 4).flatten(1))


def make(width, depth, num_classes):
    return Net(width, num_classes)
"""
# Unpadded stride-2 convolutions: the input must be at least 79 px.
DEEP_NET = """
import torch.nn as nn


def make(width, depth, num_classes):
    layers = [nn.Conv2d(3, 4, 3, stride=2)]
    for _ in range(5):
        layers += [nn.Conv2d(4, 4, 3, stride=2), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))
"""


def test_a_network_is_checked_at_the_resolutions_it_runs_at(cli, tmp_path):
    """A network that needs some size of input is refused only at sizes it cannot take: a deep
    one counts at 224 px and not at 64, a CIFAR one trains at 32 px and not at 40."""
    (tmp_path / "deep.py").write_text(DEEP_NET)
    (tmp_path / "cifar.py").write_text(FIXED_SIZE_NET)
    deep, cifar = f"{tmp_path / 'deep.py'}:make", f"{tmp_path / 'cifar.py'}:make"
    counted = cli("flops", deep, "--format", "json")
    assert counted.code == 0, counted.err
    [row] = json.loads(counted.out)
    assert row["resolution"] == 224 and row["params"] == sum(p.numel() for p in build_model(deep).parameters())
    small = cli("flops", deep, "--resolution", "64")
    assert small.code == 2
    [line] = small.err.strip().splitlines()
    assert line.startswith(f"error: factory {deep!r}: its network fails on a (1, 3, 64, 64) input: RuntimeError: "), line

    trained = cli("train", cifar, "--resolution", "32", *TRAIN, "--format", "json")
    assert trained.code == 0, trained.err
    assert json.loads(trained.out)["state"] == "complete"
    wider = cli("train", cifar, "--resolution", "40", *TRAIN)
    assert wider.code == 2
    [line] = wider.err.strip().splitlines()
    assert line.startswith(f"error: factory {cifar!r}: its network fails on a (1, 3, 40, 40) input: RuntimeError: "), line


def test_search_refuses_a_candidate_resolution_the_network_cannot_take(cli, tmp_path):
    """The CIFAR network runs at its 32 px base but not at gamma 1.2's 40 px: refused while the
    candidates are planned, naming the resolution, and leaves no folder behind."""
    (tmp_path / "cifar.py").write_text(FIXED_SIZE_NET)
    cifar = f"{tmp_path / 'cifar.py'}:make"
    root = tmp_path / "searches"
    result = cli("search", "--base", cifar, "--base-resolution", "32", "--alpha-range", "1", "--beta-range", "1",
                 "--gamma-range", "1.2", "--tolerance", "1", *TRAIN, "--root", root)
    assert result.code == 2
    [line] = result.err.strip().splitlines()
    assert line.startswith(f"error: --base: factory {cifar!r}: its network fails on a (1, 3, 40, 40) input"), line
    assert not root.exists()  # nor the root it would have been made in
    at_base = cli("search", "--base", cifar, "--base-resolution", "40", *TRAIN, "--root", root)  # refused before planning
    assert at_base.code == 2 and not root.exists()
    [line] = at_base.err.strip().splitlines()
    assert line.startswith(f"error: --base: factory {cifar!r}: its network fails on a (1, 3, 40, 40) input"), line
