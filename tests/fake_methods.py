"""Minimal adapters that misbehave on purpose, for the runner's failure paths."""

import numpy as np

from methods.api import BaseHparams, Method


class _Constant(Method):
    framework = "numpy"
    Hparams = BaseHparams

    def setup(self, spec, hparams, seed, device):
        self.n_classes = spec.n_classes
        self.steps = 0

    def train_step(self, batch):
        self.steps += 1
        return {"loss": 1.0, "correct": 0}

    def predict(self, batch):
        return np.zeros((batch.size, self.n_classes))

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


class NanMethod(_Constant):
    name = "fake-nan"

    def train_step(self, batch):
        super().train_step(batch)
        return {"loss": float("nan"), "correct": 0}


class CrashMethod(_Constant):
    name = "fake-crash"

    def train_step(self, batch):
        raise RuntimeError("boom in train_step")


class OomMethod(_Constant):
    name = "fake-oom"

    def train_step(self, batch):
        raise MemoryError()


class NothingDense(_Constant):
    """Touches nothing: its training memory is the harness's own."""

    name = "fake-nothing-dense"
    input_format = "dense"


class NothingEvents(NothingDense):
    name = "fake-nothing-events"
    input_format = "events"


class SilentMethod(_Constant):
    """A network whose hidden layer never fires (as one trained into silence)."""

    name = "fake-silent"

    def train_step(self, batch):
        super().train_step(batch)
        return {"loss": 2.0, "correct": 0, "hidden_spikes": 0}


class FlatMethod(_Constant):
    """A network whose outputs stay uniform: the loss sits at ln(C) for ever."""

    name = "fake-flat"

    def train_step(self, batch):
        super().train_step(batch)
        return {"loss": float(np.log(self.n_classes)), "correct": 0}
