"""EventProp at the embedded set's budget: the regulariser's default weight against the loss at
initialisation, and the silent-neuron remedy reviving a layer that starts silent."""

from __future__ import annotations

from methods.eventprop.balance import HIDDEN_WEIGHTS, READOUTS, format_table, reg_ratios
from methods.eventprop.hparams import EventPropHparams


def test_default_regulariser_does_not_dominate_the_loss_gradient():
    """At initialisation on the embedded set (default network), the regulariser's share of each
    hidden gradient is smaller than the loss's own, for every readout."""
    table = reg_ratios("synthetic", batches=2)
    print("\n" + format_table(table, EventPropHparams.reg_strength))
    assert set(table) == set(READOUTS)
    for readout, row in table.items():
        assert set(row) == set(HIDDEN_WEIGHTS)
        for key, ratio in row.items():
            assert 0.0 < ratio < 1.0, (readout, key, ratio)
