"""Any network as a family: a user's factory `make(width, depth, num_classes) -> nn.Module`,
named by a reference `package.module:make` or `path/to/file.py:make`.

A reference stands wherever a preset name does (`scaler flops net.py:make`, `scaler search
--base net.py:make`): it behaves like a preset with width 1, depth 1 and resolution 224, and
the factory receives the multipliers a command asks for. Every spec is checked once, up front
(`check_factory`), and its network is run once at each resolution it is counted or trained at
(`check_factory_at`), so a broken factory is one line and exit code 2, never a failed count or
training; a network that needs a size of input (a CIFAR net's fixed pooling, a deep stack of
unpadded convolutions) is refused only at the resolutions it cannot take.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import re
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from scaler.errors import UsageError
from scaler.files import read_from
from scaler.models.family import Family, Preset, checked_multipliers
from scaler.models.registry import REFERENCE_FAMILY, is_file_location, is_reference, register_family
from scaler.random_state import generators_kept

_MAX_MESSAGE = 200  # characters of an exception's message quoted in an error line


@dataclass(frozen=True)
class FactorySpec:
    """A network a user's factory makes: the reference and the arguments it is called with.

    `dropout` completes the spec interface every family shares; a factory sets its own, so
    only 0 is accepted (see `factory_spec`).
    """

    family: ClassVar[str] = REFERENCE_FAMILY

    reference: str
    width: float
    depth: float
    num_classes: int
    dropout: float = 0.0


def _one_line(exc: BaseException) -> str:
    """An exception as 'Type: message' on one line, its message shortened if long."""
    message = " ".join(str(exc).split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _import_file(path: Path) -> object:
    """Execute a Python file as a module of its own, registered in sys.modules under a name
    derived from its absolute path (so two files called net.py never share one)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = "scaler_factory_" + re.sub(r"\W", "_", path.stem) + "_" + digest
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def read_where(reference: str) -> str:
    """' (a relative path, read from <this folder>)' for a factory file named by a relative
    path, '' for any other reference: where a message about the file it read must say so."""
    location = reference.rpartition(":")[0]
    return read_from(Path(location).expanduser()) if is_file_location(location) else ""


@functools.lru_cache(maxsize=64)
def load_factory(reference: str) -> Callable[..., object]:
    """The callable a reference names, imported once per reference (a relative file path is
    relative to the current folder); UsageError naming the reference otherwise."""
    location, _, attribute = reference.rpartition(":")
    if not location or not attribute.isidentifier():
        raise UsageError(
            f"factory {reference!r} is malformed; use package.module:factory or path/to/file.py:factory"
        )
    path = Path(location).expanduser().resolve() if is_file_location(location) else None
    if path is not None and not path.is_file():
        raise UsageError(f"factory {reference!r}: no file {location}{read_where(reference)}")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # what it prints is not the command's output (a CSV on stdout)
            module = importlib.import_module(location) if path is None else _import_file(path)
    except (Exception, SystemExit) as exc:  # ImportError, SyntaxError, or whatever the module's code raises (sys.exit too)
        raise UsageError(f"factory {reference!r} cannot be imported: {_one_line(exc)}") from exc  # --debug: the line in their file
    if not hasattr(module, attribute):
        raise UsageError(f"factory {reference!r}: {location} has no attribute {attribute!r}")
    factory = getattr(module, attribute)
    if not callable(factory):
        raise UsageError(
            f"factory {reference!r}: {attribute} is an object of type {type(factory).__name__}, not a callable "
            "make(width, depth, num_classes)"
        )
    return factory


def build_factory(spec: FactorySpec) -> nn.Module:
    """The module the factory makes for `spec` (on the current default device); UsageError
    naming what it raised or returned instead. What the factory prints, as what its module
    prints when imported, goes to stderr: stdout may be carrying a CSV or JSON document.
    (`sys.stdout` is swapped for the whole process meanwhile: no other thread of scaler's
    writes to it; what C code writes to file descriptor 1 is not redirected.)"""
    factory = load_factory(spec.reference)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            model = factory(spec.width, spec.depth, spec.num_classes)
    except (Exception, SystemExit) as exc:
        raise UsageError(
            f"factory {spec.reference!r} raised {_one_line(exc)} when called with "
            f"width={spec.width:g}, depth={spec.depth:g}, num_classes={spec.num_classes}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise UsageError(f"factory {spec.reference!r} returned an object of type {type(model).__name__}, not a torch.nn.Module")
    earlier = _BUILT.get(id(model))
    if earlier is not None and earlier() is model:
        raise UsageError(f"factory {spec.reference!r} returned a module it returned before; make() must build a new network "
                         "on every call (each training starts from its own initial weights, and one module would carry "
                         "one training's weights into the next)")
    _BUILT[id(model)] = weakref.ref(model, lambda _, key=id(model): _BUILT.pop(key, None))
    return model


# Every module a factory returned that is still alive, by identity (a module may hash by value,
# or not at all: a dataclass), each entry dropped as its module is.
_BUILT: dict[int, weakref.ref[nn.Module]] = {}


@functools.lru_cache(maxsize=256)
def check_factory(spec: FactorySpec) -> None:
    """UsageError unless the factory imports, is callable and returns an nn.Module for `spec`'s
    arguments. Runs once per spec, on the CPU (whatever default device is active), and leaves
    the random generators as it found them: a seeded build that happens to run the check first
    makes the same weights as one that does not."""
    with generators_kept(), torch.device("cpu"):
        build_factory(spec)


@functools.lru_cache(maxsize=256)
def check_factory_at(spec: FactorySpec, resolution: int) -> None:
    """UsageError unless the factory's network maps a (1, 3, resolution, resolution) input to
    (1, num_classes) logits. Runs once per spec and resolution, as `check_factory` does, in
    eval mode under no_grad."""
    shape = (1, 3, resolution, resolution)
    with generators_kept(), torch.device("cpu"):
        model = build_factory(spec)
        try:
            with torch.no_grad():
                output = model.eval()(torch.zeros(shape))
        except (Exception, SystemExit) as exc:
            raise UsageError(f"factory {spec.reference!r}: its network fails on a {shape} input: {_one_line(exc)}") from exc
    expected = (1, spec.num_classes)
    if not isinstance(output, torch.Tensor):
        raise UsageError(
            f"factory {spec.reference!r}: its network returns an object of type {type(output).__name__} for a "
            f"{shape} input; expected a tensor of shape {expected} (one logit per class)"
        )
    if tuple(output.shape) != expected:
        raise UsageError(
            f"factory {spec.reference!r}: its network returns shape {tuple(output.shape)} for a "
            f"{shape} input; expected {expected} (one logit per class, num_classes={spec.num_classes})"
        )


def factory_spec(
    preset: Preset,
    *,
    width: float | None = None,
    depth: float | None = None,
    num_classes: int = 1000,
    dropout: float | None = None,
) -> FactorySpec:
    """The checked spec of the factory `preset.name` refers to, with the given multipliers."""
    width, depth = checked_multipliers(preset, width, depth, num_classes)
    if dropout:
        raise UsageError(
            f"factory {preset.name!r}: dropout = {dropout:g} cannot be passed on; a factory sets its own dropout",
            param="dropout",
        )
    spec = FactorySpec(preset.name, width, depth, num_classes)
    check_factory(spec)
    return spec


def short_name(variant: str) -> str:
    """A variant in a folder name: a factory reference as its file stem (or last module) and
    attribute, 'net-make'; a preset name unchanged."""
    if not is_reference(variant):
        return variant
    location, _, attribute = variant.strip().rpartition(":")
    stem = Path(location).stem if is_file_location(location) else location.rpartition(".")[2]
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", f"{stem}-{attribute}")


FAMILY = register_family(
    Family(
        name=REFERENCE_FAMILY,
        presets={},
        spec=factory_spec,
        build=build_factory,
        pieces=None,  # counted by one whole-model pass
        check=check_factory_at,
    )
)
