"""One step of the shared hidden layer (:mod:`methods.lif`) in torch, written once: the reference
forward pass, e-prop, R-STDP, EventProp's grid forward and the tests' autograd oracles all call
:func:`lif_step`. (Kept apart from lif.py so that importing lif.py costs no torch.)

The step is lif.py's hidden-layer equations, with u[t] the membrane before the reset (computed
as lerp(V, I, 1 - alpha)), the spike taken on the margin u[t] - shift - theta, and the reset
V[t] = u[t] - u[t] z[t]; ``shift`` is a threshold adaptation (e-prop's ALIF), none for plain LIF.

Two ways to call it. Functional (no ``*_out`` buffers): every value is a new tensor, so autograd
runs through it; ``spike`` replaces H by a surrogate-gradient function of the margin
u - shift - theta, and ``detach_reset`` leaves the reset out of the graph. Buffered: the ``*_out``
tensors receive the values in place (they may alias inputs: ``i_out=drive`` overwrites the drive
with I, ``u_out=v`` and ``v_out=v`` step V in place), so a forward loop allocates nothing.
"""

from __future__ import annotations

from typing import Callable

import torch

from methods.lif import THETA, Decays

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


def lif_step(v: torch.Tensor, i_prev: torch.Tensor, drive: torch.Tensor, decays: Decays,
             z_prev: torch.Tensor | None = None, w_rec: torch.Tensor | None = None, *,
             shift: torch.Tensor | None = None, spike: SpikeFn | None = None,
             detach_reset: bool = False, i_out: torch.Tensor | None = None,
             u_out: torch.Tensor | None = None, m_out: torch.Tensor | None = None,
             z_out: torch.Tensor | None = None, v_out: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (I[t], u[t], z[t], V[t]). ``m_out`` receives the margin's base u - shift (only
    with ``shift``); ``z_out`` may be float (0/1) or bool; with a bool z the reset is a masked
    fill, with a float z it is u - u z (the same values). A boolean ``z_prev`` adds the rows of
    W_rec of the neurons that fired instead of the dense product (the same sum, in another
    order: equal to rounding)."""
    i = torch.add(drive, i_prev, alpha=decays.beta, out=i_out)
    if w_rec is not None and z_prev is not None:
        if z_prev.dtype == torch.bool:
            i = _add_spike_rows(i, z_prev, w_rec, i_out is not None)
        else:
            i = i.addmm_(z_prev, w_rec) if i_out is not None else torch.addmm(i, z_prev, w_rec)
    u = torch.lerp(v, i, 1.0 - decays.alpha, out=u_out)
    m = u if shift is None else torch.sub(u, shift, out=m_out)
    if spike is not None:
        z = spike(m - THETA)
    elif z_out is not None:
        z = torch.gt(m, THETA, out=z_out)
    else:
        z = (m > THETA).to(u.dtype)
    if z.dtype == torch.bool:
        if v_out is None:
            v_new = u.masked_fill(z, 0.0)
        else:
            v_new = (v_out if v_out is u else v_out.copy_(u)).masked_fill_(z, 0.0)
    elif detach_reset:
        v_new = u - (u * z).detach()
    elif v_out is not None:
        v_new = torch.addcmul(u, u, z, value=-1.0, out=v_out)
    else:
        v_new = u - u * z
    return i, u, z, v_new


def output_step(v_o: torch.Tensor, i_o: torch.Tensor, z: torch.Tensor, w_out: torch.Tensor,
                decays: Decays) -> tuple[torch.Tensor, torch.Tensor]:
    """The leaky-integrator output of lif.py: I_o[t] = beta I_o[t-1] + z[t] W_out,
    V_o[t] = alpha_o V_o[t-1] + (1 - alpha_o) I_o[t]. Returns (I_o[t], V_o[t]), new tensors."""
    i_o = decays.beta * i_o + z @ w_out
    return i_o, torch.lerp(v_o, i_o, 1.0 - decays.alpha_out)


def _add_spike_rows(i: torch.Tensor, z: torch.Tensor, w_rec: torch.Tensor,
                    inplace: bool) -> torch.Tensor:
    """i + z W_rec for a boolean spike mask z: the rows of W_rec of the neurons that fired,
    added per sample (nothing when none fired); one dense product when many fired, or off
    the CPU (finding the rows would cost a host sync per step there)."""
    b = m = None
    if z.device.type == "cpu":
        b, m = z.nonzero(as_tuple=True)
        if b.numel() == 0:
            return i
    if b is None or b.numel() > z.numel() // 16:
        zf = z.to(i.dtype)
        return i.addmm_(zf, w_rec) if inplace else torch.addmm(i, zf, w_rec)
    return i.index_put_((b,), w_rec[m], accumulate=True) if inplace else \
        i.index_put((b,), w_rec[m], accumulate=True)
