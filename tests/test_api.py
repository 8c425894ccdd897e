import dataclasses

import pytest

from methods.api import InputError, NetworkHparams, make_hparams, parse_overrides, validate_network


@dataclasses.dataclass
class Example(NetworkHparams):
    mode: str = "a"
    clip: float | None = None

    def validate(self):
        validate_network(self)


def test_overrides_are_typed():
    values = parse_overrides(Example, ["hidden=64", "recurrent=false", "lr=0.01", "loss=max",
                                       "clip=none", "epochs=3"])
    assert values == {"hidden": 64, "recurrent": False, "lr": 0.01, "loss": "max", "clip": None,
                      "epochs": 3}
    assert parse_overrides(Example, ["clip=2.5"]) == {"clip": 2.5}


@pytest.mark.parametrize("pair, message", [
    ("hidden=abc", "bad value for hidden: expected an integer"),
    ("recurrent=maybe", "bad value for recurrent"),
    ("lr=nan", "finite"),
    ("nosuch=1", "unknown hyperparameter 'nosuch'"),
    ("hidden", "--set expects key=value"),
])
def test_bad_overrides_are_input_errors(pair, message):
    with pytest.raises(InputError, match=message):
        parse_overrides(Example, [pair])


@pytest.mark.parametrize("values, message", [
    ({"loss": "softmax"}, "unknown loss"),
    ({"hidden": 0}, "hidden must be positive"),
    ({"tau_mem": -1.0}, "tau_mem must be positive"),
    ({"epochs": 0}, "epochs must be at least 1"),
])
def test_validation_rejects_nonsense(values, message):
    with pytest.raises(InputError, match=message):
        make_hparams(Example, values)
