"""An open study: what every part of the engine passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna

from scaler.study.experiment import Experiment
from scaler.study.storage import is_url


@dataclass
class StudyHandle:
    """An open study: its Optuna study, experiment, name and (locally) its folder. `notes`
    are lines for the user about what opening it found (e.g. a summary rebuilt)."""

    study: optuna.Study
    experiment: Experiment
    name: str
    folder: Path | None
    storage_url: str
    exclusive: bool = False  # a journal we hold the folder lock for: RUNNING trials are stale
    notes: list[str] = field(default_factory=list)

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The study's own storage object. Optuna wraps an RDB storage in a cache; popping
        and updating trials through any other object would bypass (and confuse) it."""
        return self.study._storage

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.name)

    @property
    def uses_heartbeat(self) -> bool:
        return is_url(self.storage_url)
