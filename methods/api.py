"""The contract between the harness and every training-method adapter.

The harness knows methods only through this module: a method is a class with the attributes and
methods of :class:`Method`, its hyperparameters are a dataclass derived from :class:`BaseHparams`,
and data reaches it as :class:`datasets.types.Batch` objects of numpy arrays.

This module imports only the standard library, numpy and the data types, so that
``python -m bench list`` and the CLI's argument checking never import a deep-learning framework.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from datasets.types import Batch, DatasetSpec, Events, InputError

__all__ = ["Batch", "DatasetSpec", "Events", "InputError", "DivergedError", "BaseHparams",
           "NetworkHparams", "InferenceStats", "Method", "READOUTS", "parse_overrides",
           "make_hparams", "validate_network", "hparam_fields", "check_loss", "MAX_LOSS",
           "BpttHparams", "FIRST_SPIKE"]

InputFormat = Literal["dense", "events"]
READOUTS = ("sum", "sum_exp", "gauss_window", "max")
FIRST_SPIKE = "first_spike"  # the first-spike loss (methods/readouts.py), where a method offers it


MAX_LOSS = 1e4  # a training loss above this counts as exploding


def check_loss(value: float, max_loss: float = MAX_LOSS) -> None:
    """Raise :class:`DivergedError` when a training loss is not finite or above ``max_loss``."""
    if not math.isfinite(value) or value > max_loss:
        raise DivergedError(f"loss became {value}")


class DivergedError(Exception):
    """Training produced a non-finite or exploding loss. The run is recorded as ``diverged``."""


@dataclass
class BaseHparams:
    """Hyperparameters every method has. Adapters derive their own dataclass from this one.

    ``epochs=None`` means the dataset's recommended budget, and an ``lr`` marked
    ``from_dataset_budget`` takes that budget's rate when not set (SHD/SSC: the reference 100
    epochs at Adam 1e-3; the embedded synthetic set: 2 epochs at 1e-2; see
    :mod:`datasets.catalog`). ``steps`` and ``dt_ms`` set the binning of the input.
    """

    epochs: int | None = None
    batch_size: int = 32
    steps: int = 1000
    dt_ms: float = 1.0
    # The Adam rate. Unless set (--set lr=...), a run takes the dataset's recommended rate, the
    # one its epoch budget was chosen with; this default is for use outside the runner.
    lr: float = field(default=1e-3, metadata={"from_dataset_budget": True})
    # How the rate changes over the epochs (bench/trainer.py): held at ``lr``, or a cosine
    # decay from ``lr`` in the first epoch towards zero after the last.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    # Input augmentation (training batches only; see datasets/transforms.py).
    aug_shift: int = 0  # random shift of all channels of a sample by up to +-aug_shift
    aug_blend: float = 0.0  # extra samples per batch, as a fraction, blended from two of one class
    aug_dropout: float = 0.0  # probability of dropping each input spike
    # Input representation (every split): n delayed copies of the input, delay_ms apart.
    delay_lines: int = 1
    delay_ms: float = 0.0
    input_pool: int = 1  # sum each k neighbouring input channels into one (every split)

    def uses_transforms(self) -> bool:
        return bool(self.aug_shift or self.aug_blend or self.aug_dropout or self.delay_lines > 1
                    or self.input_pool > 1)


@dataclass
class NetworkHparams(BaseHparams):
    """The shared network of methods/lif.py: input -> LIF hidden (exponential current synapses,
    optionally recurrent) -> leaky-integrator outputs, read out by ``loss``.

    Every method built on this network uses these names and defaults, so a comparison changes one
    thing at a time. ``gauss_mu`` and ``gauss_sigma`` are fractions of the sequence length; unless
    set, a run with ``loss=gauss_window`` takes them from the data (methods/readouts.py).
    ``train_hidden=False`` keeps W_in and W_rec at their initial values so that only W_out learns:
    the readout-only control, which shows how much of a result the hidden layer's learning adds.
    ``losses`` are the values ``loss`` accepts; a method that also offers ``first_spike`` (read
    with ``fs_tau`` and ``fs_early``, methods/readouts.py) adds it in its own dataclass.
    """

    losses: ClassVar[tuple[str, ...]] = READOUTS

    hidden: int = 256
    recurrent: bool = True
    tau_mem: float = 20.0
    tau_syn: float = 5.0
    tau_out: float = 20.0
    loss: str = "sum_exp"
    # Unless set, the runner scales the window to the training data's utterances (readouts.py)
    gauss_mu: float = field(default=0.5, metadata={"from_dataset_activity": True})
    gauss_sigma: float = field(default=0.25, metadata={"from_dataset_activity": True})
    # loss=first_spike: scores -t / fs_tau, t in ms; weight of the term keeping the correct
    # output early
    fs_tau: float = 20.0
    fs_early: float = 0.1
    train_hidden: bool = True

    def trains(self, weight: str) -> bool:
        """Whether ``weight`` (w_in, w_rec or w_out) learns: with ``train_hidden=False`` only
        w_out does."""
        return self.train_hidden or weight == "w_out"


@dataclass
class InferenceStats:
    """Activity of the last ``predict`` call, per sample, for NeuroBench-style inference metrics.

    ``synops``: effective synaptic operations (accumulates triggered by spikes, MACs for dense
    inputs); ``dense_synops``: the operations a dense implementation would perform.
    """

    hidden_spikes: np.ndarray  # (B,) total hidden spikes per sample
    n_neurons: int  # hidden neurons counted in hidden_spikes
    synops: np.ndarray  # (B,)
    dense_synops: np.ndarray  # (B,)
    active_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (B,) neuron-steps active


class Method:
    """Base class of a training-method adapter. Subclasses set the class attributes and implement
    ``setup``, ``train_step``, ``predict``, ``state_dict`` and ``load_state_dict``.

    Timing contract: the runner times ``train_step`` and ``finalize`` (each followed by ``sync``);
    ``predict`` is never timed. ``train_step`` returns at least ``loss`` and, where cheap,
    ``correct`` (number of correctly classified samples in the batch).
    """

    name: ClassVar[str] = ""
    framework: ClassVar[str] = "numpy"  # "torch" | "jax" | "numpy"
    Hparams: ClassVar[type[BaseHparams]] = BaseHparams
    input_format: ClassVar[InputFormat] = "dense"

    def setup(self, spec: DatasetSpec, hparams: BaseHparams, seed: int, device: str) -> None:
        raise NotImplementedError

    def train_step(self, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def set_lr(self, lr: float) -> None:
        """Train the coming epoch at rate ``lr`` (the harness's schedule, ``lr_schedule``). The
        default serves adapters whose ``self.optimizer`` is a torch optimiser; an adapter with
        another optimiser overrides it."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None or not hasattr(optimizer, "param_groups"):
            raise NotImplementedError(f"{self.name or type(self).__name__} cannot change its "
                                      "learning rate during a run")
        for group in optimizer.param_groups:
            group["lr"] = lr

    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch's training steps (untimed), e.g. a silent-neuron remedy."""

    def finalize(self) -> None:
        """Work after the last epoch that counts as training (timed), e.g. ANN-to-SNN conversion."""

    def predict(self, batch: Batch) -> np.ndarray:
        """Class scores, shape (B, n_classes); the prediction is their argmax."""
        raise NotImplementedError

    def inference_stats(self) -> InferenceStats | None:
        """Activity of the last ``predict`` call; None when the method cannot say."""
        return None

    def extra_metrics(self) -> dict[str, float]:
        """Method-specific figures for the record (e.g. an ANN's accuracy before conversion)."""
        return {}

    def sync(self) -> None:
        """Block until queued device work is done, so a clock read after it is honest."""

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Hyperparameter parsing: `--set key=value` checked against the dataclass's field types.


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _convert(text: str, annotation: Any) -> Any:
    """Convert a command-line string to the type a dataclass field declares."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() == "none" and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(text, arg)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if text in args:
            return text
        raise ValueError(f"expected one of {', '.join(map(str, args))}, got {text!r}")
    if annotation is bool:
        return _parse_bool(text)
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if annotation is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not np.isfinite(value):
            raise ValueError(f"expected a finite number, got {text!r}")
        return value
    if annotation is str:
        return text
    raise ValueError(f"cannot parse a value of type {annotation}")


def lr_from_dataset_budget(cls: type[BaseHparams]) -> bool:
    """Whether ``cls``'s learning rate follows the dataset's budget when not set explicitly (a
    method with a rate of its own scale, e.g. R-STDP's, declares its own default instead)."""
    found = {f.name: f for f in dataclasses.fields(cls)}.get("lr")
    return bool(found is not None and found.metadata.get("from_dataset_budget"))


def window_from_dataset_activity(cls: type[BaseHparams]) -> bool:
    """Whether ``cls``'s Gaussian readout window is placed on the dataset's activity when its
    ``gauss_mu`` / ``gauss_sigma`` are not set explicitly."""
    found = {f.name: f for f in dataclasses.fields(cls)}.get("gauss_mu")
    return bool(found is not None and found.metadata.get("from_dataset_activity"))


def hparam_fields(cls: type[BaseHparams]) -> dict[str, Any]:
    """Field name -> resolved type annotation."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_overrides(cls: type[BaseHparams], pairs: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings into typed values; raise InputError naming the bad one."""
    fields = hparam_fields(cls)
    values: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--set expects key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        key = key.strip()
        if key not in fields:
            raise InputError(
                f"unknown hyperparameter {key!r} for {cls.__qualname__}; known: {', '.join(fields)}"
            )
        try:
            values[key] = _convert(text.strip(), fields[key])
        except ValueError as exc:
            raise InputError(f"bad value for {key}: {exc}") from None
    return values


def make_hparams(cls: type[BaseHparams], overrides: dict[str, Any]) -> BaseHparams:
    """Build the dataclass and validate it (``validate()`` if the class defines one)."""
    hparams = cls(**overrides)
    check = getattr(hparams, "validate", None)
    if callable(check):
        check()
    return hparams


def validate_network(hp: NetworkHparams) -> None:
    """Range checks shared by the network methods; raise InputError on nonsense."""
    if hp.loss not in hp.losses:
        raise InputError(f"unknown loss {hp.loss!r} for this method; known: {', '.join(hp.losses)}")
    positive = {
        "hidden": hp.hidden,
        "tau_mem": hp.tau_mem,
        "tau_syn": hp.tau_syn,
        "tau_out": hp.tau_out,
        "steps": hp.steps,
        "dt_ms": hp.dt_ms,
        "batch_size": hp.batch_size,
        "lr": hp.lr,
        "gauss_sigma": hp.gauss_sigma,
        "fs_tau": hp.fs_tau,
    }
    for key, value in positive.items():
        if not value > 0:
            raise InputError(f"{key} must be positive, got {value}")
    if not 0.0 <= hp.gauss_mu <= 1.0:
        raise InputError(f"gauss_mu is a fraction of the window: must be in 0..1, got {hp.gauss_mu}")
    if hp.gauss_sigma > 1.0:
        raise InputError(f"gauss_sigma is a fraction of the window: must be at most 1, got {hp.gauss_sigma}")
    if hp.fs_early < 0:
        raise InputError(f"fs_early must be non-negative, got {hp.fs_early}")
    if hp.epochs is not None and hp.epochs < 1:
        raise InputError(f"epochs must be at least 1, got {hp.epochs}")


@dataclass
class BpttHparams(NetworkHparams):
    """The surrogate-gradient BPTT backends' hyperparameters (snntorch, norse, spyx): the shared
    network plus the slope of the fast-sigmoid surrogate."""

    surrogate_slope: float = 100.0
    neuron: Literal["lif", "adlif", "izhikevich"] = "lif"  # hidden neuron (methods/neurons/)

    def validate(self) -> None:
        validate_network(self)
