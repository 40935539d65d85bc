"""Which data a study trains on, as data: `DataOptions` (the source, image counts, the
validation share). The data's own modules (which need torch) are imported where the data is
counted or loaded, so that the command line reads the defaults without them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from scaler.errors import UsageError, attributed_to

if TYPE_CHECKING:
    from scaler.data.dataset import DataIdentity, Dataset
    from scaler.runtime import Runtime


@dataclass(frozen=True)
class DataOptions:
    """Which data a study trains on (the storage resolution follows from the work items)."""

    source: str = "synthetic"
    train_images: int | None = None
    val_images: int | None = None
    val_fraction: float = 0.2
    native_resolution: int = 256

    def canonical(self) -> DataOptions:
        """The same data spelled one way, so a study is found by what it trains on: the
        source as `canonical_source` writes it, and `val_fraction` at its default where the
        source has its own validation split (`has_own_split`) and ignores it."""
        from scaler.data.dataset import canonical_source, has_own_split

        self._check_val_fraction()  # a bad fraction is refused, never reset to the default
        source = canonical_source(self.source)
        return replace(self, source=source, val_fraction=DataOptions.val_fraction if has_own_split(source) else self.val_fraction)

    def as_kept_before(self, val_fraction: float) -> DataOptions:
        """This data with `val_fraction` as typed, as scaler kept it until 2026-12-04 for a
        folder with its own train/ and val/ (which does not use it): the spelling a study
        begun then records."""
        return replace(self, val_fraction=val_fraction)

    def validate(self) -> None:
        """Catch what can be checked before a study exists: counts, fraction, the source."""
        from scaler.data.dataset import check_image_counts

        check_image_counts(self.train_images, self.val_images)
        self._check_val_fraction()
        self.classes()

    def _check_val_fraction(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise UsageError(f"val fraction = {self.val_fraction} is not allowed; it must be in (0, 1)", param="val_fraction")

    def train_images_in_all(self) -> int | None:
        """Training images the source has before any cap (None: synthetic, rendered to order)."""
        return _train_images_in_all(self.source, self.val_fraction)

    def training_images(self) -> int | None:
        """How many images a training takes: the cap, or all the source has, whichever is
        fewer (the synthetic set renders SYNTHETIC_TRAIN unless told otherwise)."""
        from scaler.data.synthetic import SYNTHETIC_TRAIN

        if self.source == "synthetic":
            return SYNTHETIC_TRAIN if self.train_images is None else self.train_images
        in_all = self.train_images_in_all()
        return in_all if self.train_images is None or in_all is None else min(self.train_images, in_all)

    def classes(self) -> int:
        """How many classes the source has (its layout checked, nothing decoded)."""
        from scaler.data.dataset import count_classes

        with attributed_to("data"):
            return count_classes(self.source, self.val_fraction)

    def load(self, storage_resolution: int, seed: int, runtime: Runtime,
             before_decoding: Callable[[DataIdentity], None] | None = None) -> Dataset:
        """The data set at `storage_resolution`, split with `seed`, cached in the runtime's
        cache folder; `before_decoding` as `load_dataset` takes it."""
        from scaler.data.dataset import load_dataset

        return load_dataset(
            self.source,
            storage_resolution=storage_resolution,
            train_images=self.train_images,
            val_images=self.val_images,
            val_fraction=self.val_fraction,
            seed=seed,
            native_resolution=self.native_resolution,
            cache_dir=runtime.cache_dir,
            before_decoding=before_decoding,
        )


@functools.lru_cache(maxsize=8)
def _train_images_in_all(source: str, val_fraction: float) -> int | None:
    from scaler.data.dataset import count_train_images

    with attributed_to("data"):
        return count_train_images(source, val_fraction)
