"""The one table of named datasets: what each is, its split files, classes and recommended budget.

Every other module asks this table: the CLI's ``bench list``, name resolution in
:mod:`datasets.paths`, and the recommended number of epochs a run uses when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NamedDataset:
    name: str
    description: str
    splits: tuple[str, ...]  # split files that exist for it (a missing valid split is cut from train)
    n_classes: int
    recommended_epochs: int
    recommended_lr: float  # the Adam rate at which that many epochs train the shared network
    generated: bool = False  # made on this machine rather than downloaded


#: Reference budget for SHD/SSC: mlGeNN's 100 epochs at Adam 1e-3 (Nowotny et al. 2025).
PUBLISHED_EPOCHS = 100
PUBLISHED_LR = 1e-3

CATALOG: dict[str, NamedDataset] = {
    entry.name: entry
    for entry in (
        NamedDataset("synthetic",
                     "embedded SHD-shaped set (700 channels, 20 classes, ~1 s), generated from a seed",
                     ("train", "test"), 20, recommended_epochs=2,
                     # 2 epochs are 24 Adam steps: at 1e-3 the surrogate and exact-gradient
                     # methods barely leave chance with some readouts; at 1e-2 they train
                     recommended_lr=1e-2, generated=True),
        NamedDataset("shd", "Spiking Heidelberg Digits (700 channels, 20 classes); `bench data fetch shd`",
                     ("train", "test"), 20, PUBLISHED_EPOCHS, PUBLISHED_LR),
        NamedDataset("ssc", "Spiking Speech Commands (700 channels, 35 classes); `bench data fetch ssc`",
                     ("train", "valid", "test"), 35, PUBLISHED_EPOCHS, PUBLISHED_LR),
        NamedDataset("spoken-digits", "English+German digits from espeak-ng voices through the SHD "
                     "cochlea (700 channels, 20 classes, held-out voices); `bench data make "
                     "spoken-digits`", ("train", "test"), 20, recommended_epochs=30,
                     recommended_lr=PUBLISHED_LR, generated=True),
    )
}

DEFAULT_DATASET = "synthetic"

#: Downloadable datasets: name -> split files.
OFFICIAL: dict[str, tuple[str, ...]] = {
    name: entry.splits for name, entry in CATALOG.items() if not entry.generated
}


def recommended_epochs(name: str) -> int:
    """The named dataset's budget; a user's own files get the SHD/SSC reference budget."""
    entry = CATALOG.get(name)
    return entry.recommended_epochs if entry else PUBLISHED_EPOCHS


def recommended_lr(name: str) -> float:
    """The learning rate of the named dataset's budget (the reference rate for other files)."""
    entry = CATALOG.get(name)
    return entry.recommended_lr if entry else PUBLISHED_LR
