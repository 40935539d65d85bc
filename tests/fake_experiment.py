"""A small experiment for testing the study engine without training anything.

Each item has a known score; items can be told to fail, to run out of memory or to take time,
and every start and finish is appended to a log file, so tests can count real executions
(across processes and kills) rather than trusting the engine's own records.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from scaler.runtime import Runtime
from scaler.states import State
from scaler.study.experiment import Experiment, Outcome, Record, Reporter, WorkItem


@dataclass(frozen=True)
class FakeConfig:
    count: int = 5
    epochs: int = 1
    fail: tuple[int, ...] = ()  # items that raise RuntimeError
    no_epochs: tuple[int, ...] = ()  # items whose epoch count (for the display) raises RuntimeError
    oom: tuple[int, ...] = ()  # items that raise the CPU allocator's message
    nan: tuple[int, ...] = ()  # items that end complete without a finite objective
    kill: tuple[int, ...] = ()  # items whose worker process SIGKILLs itself (local workers only)
    term: tuple[int, ...] = ()  # items whose worker process SIGTERMs itself alone (local workers only)
    broken_worker: bool = False  # a worker process fails to prepare (an error it prints, exit 1)
    killed_worker: bool = False  # a worker process SIGKILLs itself as it prepares, before taking any item
    seconds: float = 0.0  # how long each item works
    peers: int = 0  # an item waits (up to 60 s) until this many processes have started one: each gets work, however late it starts
    halving: bool = False  # judge reports with successive halving
    log: str = ""  # file that gets "start ITEM PID" / "finish ITEM PID" lines

    def validate(self) -> None:
        assert self.count >= 1

    def identity(self) -> dict:
        return {**asdict(self), **{key: list(getattr(self, key)) for key in TUPLES}}


TUPLES = ("fail", "no_epochs", "oom", "nan", "kill", "term")


def score(index: int) -> float:
    """Item i scores 0.9 - 0.1 i: the first is best."""
    return round(0.9 - 0.1 * index, 6)


def log_lines(path: Path) -> list[tuple[str, int, int]]:
    """(event, item, pid) for every line of a fake experiment's log."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, item, pid = line.split()
        out.append((event, int(item), int(pid)))
    return out


class FakeExperiment(Experiment):
    kind = "fake"
    noun = "item"
    summary_name = "fake.json"

    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.planned = 0  # how often `plan` measured items (only for a new study)

    @classmethod
    def plan(cls, config: FakeConfig, **settings: Any) -> FakeExperiment:
        experiment = cls(config)
        experiment.planned = 1
        return experiment

    @classmethod
    def config_from_identity(cls, identity: dict) -> FakeConfig:
        return FakeConfig(**{**identity, **{key: tuple(identity[key]) for key in TUPLES}})

    @classmethod
    def restore(cls, config: FakeConfig, attrs: Mapping[str, Any], **settings: Any) -> FakeExperiment:
        assert attrs["fake_items"] == config.count
        return cls(config)

    def study_attrs(self) -> dict[str, Any]:
        return {"fake_items": self.config.count}

    def items(self) -> list[WorkItem]:
        return [WorkItem.of(item=i) for i in range(self.config.count)]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {"item": optuna.distributions.IntDistribution(0, self.config.count - 1)}

    def pruner(self) -> optuna.pruners.BasePruner:
        if self.config.halving:
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
        return optuna.pruners.NopPruner()

    def prepare(self, runtime: Runtime, check: Callable[[Any], None] | None = None) -> dict:
        if self.config.broken_worker and multiprocessing.parent_process() is not None:
            raise RuntimeError("injected: this worker cannot prepare")
        if self.config.killed_worker and multiprocessing.parent_process() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"device": runtime.device}

    def epochs(self, context: dict, item: WorkItem) -> int:
        if item["item"] in self.config.no_epochs:
            raise RuntimeError(f"injected: no epoch count for item {item['item']}")
        return self.config.epochs

    def _log(self, event: str, index: int) -> None:
        if self.config.log:
            with open(self.config.log, "a") as f:
                f.write(f"{event} {index} {os.getpid()}\n")
                f.flush()
                os.fsync(f.fileno())

    def run(self, item: WorkItem, context: dict, runtime: Runtime, reporter: Reporter) -> Outcome:
        index = item["item"]
        self._log("start", index)
        waited = time.monotonic() + 60
        while self.config.peers and time.monotonic() < waited and len({pid for e, _, pid in log_lines(Path(self.config.log)) if e == "start"}) < self.config.peers:
            time.sleep(0.05)
        deadline = time.monotonic() + self.config.seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        if index in self.config.fail:
            raise RuntimeError(f"boom: injected failure in item {index}")
        if index in self.config.oom:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        if index in self.config.kill:
            assert multiprocessing.parent_process() is not None, "only a worker process may kill itself"
            os.kill(os.getpid(), signal.SIGKILL)
        if index in self.config.term:
            assert multiprocessing.parent_process() is not None, "only a worker process may stop itself"
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal's handler raises meanwhile
        if index in self.config.nan:
            return Outcome(State.COMPLETE, "", math.nan, {"epochs": self.config.epochs})
        value = score(index)
        for epoch in range(1, self.config.epochs + 1):
            reporter.step(epoch, self.config.epochs, 1.0, 100.0)
            partial = value * epoch / self.config.epochs
            reporter.epoch({"epoch": epoch, "value": partial})
            if reporter.report(partial, epoch) and epoch < self.config.epochs:
                self._log("finish", index)
                return Outcome(State.PRUNED, f"pruned after epoch {epoch}", None, {"value": partial, "epochs": epoch})
        self._log("finish", index)
        return Outcome(State.COMPLETE, "", value, {"value": value, "epochs": self.config.epochs})

    def table(self, records: list[Record]) -> pd.DataFrame:
        rows = [
            {"item": r.item["item"], "value": r.attrs.get("value"), "epochs": r.attrs.get("epochs"), "state": r.state.value, "reason": r.reason}
            for r in records
        ]
        frame = pd.DataFrame(rows)
        frame["_group"] = [State(s).rank_group for s in frame["state"]]
        frame = frame.sort_values(["_group", "value"], ascending=[True, False], na_position="last")
        return frame.drop(columns="_group").reset_index(drop=True)

    def summary(self, frame: pd.DataFrame, records: list[Record]) -> dict[str, Any]:
        return {"records": len(records)}


class OtherFakeExperiment(FakeExperiment):
    """Another kind of study, for what happens when a name is opened as the wrong kind."""

    kind = "other-fake"
    summary_name = "other.json"
