"""EventProp's grid mode (Wunderlich & Pehle 2021, discretised as in mlGeNN, Nowotny et al.
2025): :func:`grid_forward` and :func:`grid_backward`.

``grid`` (default): the forward pass is methods/lif.py's, step for step, so spikes and outputs are
those of every BPTT backend (bptt-snntorch):

    I[t] = beta I[t-1] + x[t] W_in + z[t-1] W_rec
    u[t] = alpha V[t-1] + (1 - alpha) I[t];  z[t] = H(u[t] - 1);  V[t] = u[t] (1 - z[t])
    I_o[t] = beta I_o[t-1] + z[t] W_out;  V_o[t] = alpha_o V_o[t-1] + (1 - alpha_o) I_o[t]

Backward: the transposed recursion of the linear parts, with EventProp's jump at each stored spike
in place of the (zero) derivative of the threshold:

    lambda_V[t]  = alpha lambda_u[t+1]
    lambda_u[t]  = lambda_V[t]                                    (no spike of that neuron at t)
    lambda_u[t]  = [lambda_V[t] I - (Sum_m W_rec[n,m] dI_m + Sum_c W_out[n,c] dIo_c)/(1 - alpha)]
                   / max(I - 1, min_slope)  +  reg                (spike of n at t, I = I_n[t])
    lambda_I[t]  = beta lambda_I[t+1] + (1 - alpha) lambda_u[t]
    dI  = lambda_I[t+2] - lambda_I[t+1]      (moving the spike by a step moves its recurrent
    dIo = lambda_Io[t+1] - lambda_Io[t]       input from I[t+1] to I[t+2], its output from I_o[t])
    dL/dW_in[i]  += x_i[t] lambda_I[t];  dL/dW_rec[n] += lambda_I[t+1];  dL/dW_out[n] += lambda_Io[t]

The output layer is linear and the readouts are linear functionals (or a max) of it, so its adjoint
has a closed form: lambda_Io[t] = q(t) E for the weighted readouts (q: the readout weights filtered
backward through the output synapse and membrane, E = (softmax(s) - onehot)/B) and
E h(t* - t) for the max readout (h: the output's impulse response, t*: the step of the maximum).
dL/dW_out is exact in this mode; the hidden-weight gradients are EventProp's spike-time gradients
(a grid forward has none: its spikes do not move under small perturbations).

Memory: per spike one int32 index and one float (I), and in the backward one more float (the
loss's jump term); buffers of ``chunk_steps`` steps; nothing of size T x B x N. Work per step:
a handful of (B, N) operations and, with recurrence, one (B, N) x (N, N) product in each
direction; the input drive and the gradient sums are sparse products.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from methods.eventprop.common import (FIRST_SPIKE, THETA, FirstSpikeTracker, Forward, Net,
                                      clip_bound, direct_terms, output_block, reg_coefficient,
                                      signal_sum)
from methods.eventprop import kernels
from methods.eventprop.events import EventBlocks, spike_matrix_t
from methods.lif_torch import lif_step


def grid_forward(net: Net, blocks: EventBlocks, store: bool, traces: bool = False) -> Forward:
    """The lif.py forward pass of a batch; ``store`` keeps the spikes for the backward pass,
    ``traces`` the output traces (tests)."""
    hp, dc = net.hp, net.decays
    B, T, K = blocks.B, blocks.T, hp.chunk_steps
    N, C = hp.hidden, net.n_classes
    dev, dt = net.device, net.dtype
    w_in, w_rec, w_out = net.w_in, net.w_rec, net.w_out
    tab = net.table(T)

    v = torch.zeros(B, N, device=dev, dtype=dt)
    i_carry = torch.zeros(B, N, device=dev, dtype=dt)
    z_carry = torch.zeros(B, N, device=dev, dtype=torch.bool)
    drive = torch.empty(K * B, N, device=dev, dtype=dt)
    zbuf = torch.empty(K, B, N, device=dev, dtype=torch.bool)  # spikes as masks: the recurrent
    zf = torch.empty(K, B, N, device=dev, dtype=dt)  # input adds rows of W_rec (lif_step)
    counts = torch.zeros(B, N, device=dev, dtype=dt)
    weighted = tab.w is not None
    rate_a = torch.zeros(B * N, device=dev, dtype=dt) if weighted else None
    need_traces = traces or not weighted
    if need_traces:
        io = torch.zeros(B * C, device=dev, dtype=dt)
        vo = torch.zeros(B * C, device=dev, dtype=dt)
        vmax = torch.full((B, C), -math.inf, device=dev, dtype=dt)
        amax = torch.zeros(B, C, device=dev, dtype=torch.int64)
    first = FirstSpikeTracker(B, C, dev, dt) if hp.loss == FIRST_SPIKE else None
    trace_blocks, flats, currents, step_counts = [], [], [], []
    fused = None
    if net.fused:
        np_dt = w_in.numpy().dtype
        w_in_np = w_in.numpy()
        w_rec_np = w_rec.numpy() if w_rec is not None else np.zeros((1, 1), np_dt)
        fused = (w_rec_np, w_rec is not None, kernels.as_scalar(1.0 - dc.alpha, np_dt),
                 kernels.as_scalar(dc.beta, np_dt), kernels.as_scalar(THETA, np_dt))
        step_buf = torch.empty(K, dtype=torch.int64)
        flat_buf = torch.empty(K * B * N, dtype=torch.int32)
        cur_buf = torch.empty(K * B * N, dtype=dt)

    for c0 in range(0, T, K):
        k_len = min(K, T - c0)
        d = drive[: k_len * B]
        if fused is not None:  # X W_in, summed row by row in the kernel
            d.zero_()
            part = blocks.rows(c0, k_len, np_dt)
            if part is not None:
                kernels.add_weighted_rows(d.numpy(), part[0], w_in_np, part[1], part[2])
        else:
            x_blk = blocks.block(c0, k_len)
            if x_blk is None:
                d.zero_()
            else:
                torch.addmm(d, x_blk, w_in, beta=0, out=d)
        d3 = d.view(k_len, B, N)
        z3 = zbuf[:k_len]
        if fused is not None:
            n_pos = kernels.forward_block(
                d3.numpy(), v.numpy(), i_carry.numpy(), z_carry.numpy(), *fused, z3.numpy(),
                zf.numpy(), counts.numpy(), step_buf.numpy(), flat_buf.numpy(), cur_buf.numpy())
            i_prev, z_prev = d3[k_len - 1], z3[k_len - 1]
            z3f, n_step = zf[:k_len], step_buf[:k_len].clone()
            if store:
                flats.append(flat_buf[:n_pos].clone())
                currents.append(cur_buf[:n_pos].clone())
        else:
            i_prev, z_prev = i_carry, z_carry
            for i_k, z_k in zip(d3.unbind(0), z3.unbind(0)):  # I, V, z in place
                lif_step(v, i_prev, i_k, dc, z_prev, w_rec, i_out=i_k, u_out=v, z_out=z_k,
                         v_out=v)
                i_prev, z_prev = i_k, z_k
            z3f = zf[:k_len].copy_(z3)
            counts += z3f.sum(0)
            n_step = z3f.view(k_len, B * N).sum(1).to(torch.int64)
            if store:
                pos = z3.view(-1).nonzero().squeeze(1)
                flats.append((pos % (B * N)).to(torch.int32))
                currents.append(d.view(-1).take(pos))
        i_carry.copy_(i_prev)
        z_carry.copy_(z_prev)
        if weighted:
            rate_a.addmv_(z3f.view(k_len, B * N).t(), tab.q[c0:c0 + k_len])
        if need_traces:
            u = (z3f.view(k_len * B, N) @ w_out).view(k_len, B * C)
            vo_blk = output_block(tab, u, io, vo).view(k_len, B, C)
            blk_max, blk_arg = vo_blk.max(dim=0)
            better = blk_max > vmax
            vmax = torch.where(better, blk_max, vmax)
            amax = torch.where(better, blk_arg + c0, amax)
            if first is not None:
                first.update(vo_blk, c0)
            if traces:
                trace_blocks.append(vo_blk.clone())
        if store:
            step_counts.append(n_step)

    fw = Forward(scores=None, counts=counts)  # type: ignore[arg-type]
    if weighted:
        fw.rate_A = rate_a.view(B, N)
        fw.scores = fw.rate_A @ w_out
    elif first is not None:
        first.finish(fw, vmax, amax, hp, T)
    else:
        fw.scores, fw.argmax, fw.taps = vmax, amax, [(amax, 1.0)]
    if traces:
        fw.traces = torch.cat(trace_blocks)
    if store:
        fw.flat, fw.current = torch.cat(flats), torch.cat(currents)
        fw.step_counts = torch.cat(step_counts)
    return fw


def grid_backward(net: Net, blocks: EventBlocks, fw: Forward,
                  error: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weights' gradients from the stored forward pass and E = dL/ds (B, C)."""
    hp, dc = net.hp, net.decays
    B, T, K = blocks.B, blocks.T, hp.chunk_steps
    N = hp.hidden
    dev, dt = net.device, net.dtype
    w_out = net.w_out
    w_rec = net.w_rec if hp.recurrent else None
    w_rec_t = w_rec.t().contiguous() if w_rec is not None else None
    tab = net.table(T)
    alpha, beta = dc.alpha, dc.beta
    # lambda_u is kept scaled by s so that lambda_I[t] = lerp(lambda_I[t+1], s lambda_u, 1 - beta)
    s = (1.0 - alpha) / (1.0 - beta)
    inv = 1.0 / (1.0 - alpha)
    clip = s * clip_bound(net, tab, B)

    g_in = torch.zeros_like(net.w_in)
    g_rec = torch.zeros_like(w_rec) if w_rec is not None else None
    weighted = tab.w is not None
    p_flat = taps = None
    if weighted:
        g_out = fw.rate_A.t() @ error  # exact: lambda_Io[t] = q(t) E
        p_flat = (error @ w_out.t()).reshape(-1)  # (B*N,): Sum_c W_out[n,c] E[b,c]
    else:
        g_out = torch.zeros_like(w_out)
        taps = fw.taps
    offsets = [0] + torch.cumsum(fw.step_counts, 0).tolist()
    starts = list(range(0, T, K))

    def block_spikes(c0: int):
        """(flat indices, step within the block, currents) of block c0's stored spikes."""
        k_len = min(K, T - c0)
        s_lo, s_hi = offsets[c0], offsets[c0 + k_len]
        counts = fw.step_counts[c0:c0 + k_len]
        if dev.type == "cpu":  # numpy's repeat is several times faster than torch's here
            k_of = torch.from_numpy(np.repeat(np.arange(k_len), counts.numpy()))
        else:
            k_of = torch.repeat_interleave(torch.arange(k_len, device=dev), counts)
        return fw.flat[s_lo:s_hi].long(), k_of, fw.current[s_lo:s_hi]

    # The loss's direct jump terms of every block first: the regulariser is measured in them
    # (one float per spike; the blocks in the backward order, as g_out accumulates).
    direct, signal_total = {}, 0.0
    for c0 in reversed(starts):
        flat, k_of, cur = block_spikes(c0)
        direct[c0] = direct_terms(net, flat, c0 + k_of, error, tab, p_flat, taps, g_out)
        if hp.reg_strength > 0:
            signal_total += signal_sum(net, direct[c0], cur)
    reg = None
    if hp.reg_strength > 0:
        reg = reg_coefficient(net, fw.counts, T, signal_total / max(offsets[-1], 1))

    if net.fused:
        np_dt = net.w_in.numpy().dtype
        w_rec_np = w_rec.numpy() if w_rec is not None else np.zeros((1, 1), np_dt)
        g_rec_np = g_rec.numpy() if g_rec is not None else np.zeros((1, 1), np_dt)
        reg_np = reg.numpy() if reg is not None else np.zeros(1, np_dt)
    lam_u = torch.zeros(B, N, device=dev, dtype=dt)
    lam_u_flat = lam_u.view(-1)
    lam_i = torch.zeros(K + 2, B, N, device=dev, dtype=dt)
    lam_rows = lam_i.unbind(0)
    diff = torch.empty(B, N, device=dev, dtype=dt)
    shift = torch.empty(B, N, device=dev, dtype=dt)
    shift_flat = shift.view(-1)
    gather_max = int(B * N * net.gather_below)
    for c0 in reversed(starts):
        k_len = min(K, T - c0)
        if c0 + K < T:  # slots K, K+1 <- steps c0 + K, c0 + K + 1 (the next block's 0, 1)
            lam_i[K:K + 2].copy_(lam_i[0:2] if K >= 2 else lam_i[0:2].clone())  # K=1 overlaps
        s_lo = offsets[c0]
        if net.fused:
            s_hi = offsets[c0 + k_len]
            edges = np.asarray(offsets[c0:c0 + k_len + 1], dtype=np.int64) - s_lo
            kernels.backward_block(
                lam_u.numpy(), lam_i.numpy(), k_len, edges, fw.flat[s_lo:s_hi].numpy(),
                fw.current[s_lo:s_hi].numpy(), direct.pop(c0).numpy(), reg_np, reg is not None,
                *(kernels.as_scalar(c, np_dt) for c in (THETA, hp.min_slope, s, -s * inv)),
                w_rec_np, w_rec is not None,
                *(kernels.as_scalar(c, np_dt) for c in (alpha, 1.0 - beta, clip)), g_rec_np)
            part = blocks.rows(c0, k_len, np_dt)  # dL/dW_in += X^T Lambda_I, row by row
            if part is not None:
                lam_blk = lam_i[:k_len].view(k_len * B, N).numpy()
                kernels.add_weighted_rows(g_in.numpy(), part[1], lam_blk, part[0], part[2])
            continue
        flat, k_of, cur = block_spikes(c0)
        denom = (cur - THETA).clamp_(min=hp.min_slope)  # the guarded (I - theta)
        coef_v = cur / denom  # multiplies lambda_V (= lambda_u after the reset)
        coef_g = denom.reciprocal_().mul_(-s * inv)  # multiplies the shift terms
        const = direct.pop(c0).mul_(coef_g)  # the loss's jump term
        if reg is not None:
            const += s * reg.take(flat % N)
        sizes = [offsets[c0 + k + 1] - offsets[c0 + k] for k in range(k_len)]
        b_of, n_of = flat // N, flat % N
        per_step = zip(flat.split(sizes), b_of.split(sizes), n_of.split(sizes),
                       const.split(sizes), coef_v.split(sizes), coef_g.split(sizes), sizes)
        for k, (f, b_k, n_k, c_k, cv_k, cg_k, size) in reversed(list(enumerate(per_step))):
            lam_u.mul_(alpha)
            if size:
                val = torch.addcmul(c_k, lam_u_flat.take(f), cv_k)
                if w_rec_t is not None:
                    # Sum_m W_rec[n,m] (lambda_I[t+2] - lambda_I[t+1])[b,m] at the spikes:
                    # row gathers for few spikes, one dense product for many
                    if size <= gather_max:
                        rows = (lam_rows[k + 2].index_select(0, b_k)
                                - lam_rows[k + 1].index_select(0, b_k))
                        val.addcmul_((rows * w_rec.index_select(0, n_k)).sum(1), cg_k)
                    else:
                        torch.sub(lam_rows[k + 2], lam_rows[k + 1], out=diff)
                        torch.mm(diff, w_rec_t, out=shift)
                        val.addcmul_(shift_flat.take(f), cg_k)
                if clip > 0:
                    val.clamp_(-clip, clip)
                lam_u_flat.put_(f, val)
            torch.lerp(lam_rows[k + 1], lam_u, 1.0 - beta, out=lam_rows[k])
        gradient_sums(blocks, c0, k_len, lam_i, flat, k_of, g_in, g_rec)
    grads = {"w_in": g_in, "w_out": g_out}
    if g_rec is not None:
        grads["w_rec"] = g_rec
    return grads


def gradient_sums(blocks: EventBlocks, c0: int, k_len: int, lam_i: torch.Tensor,
                  flat: torch.Tensor, k_of: torch.Tensor, g_in: torch.Tensor,
                  g_rec: torch.Tensor | None) -> None:
    """Adds block c0's terms of dL/dW_in (x[t] lambda_I[t]) and dL/dW_rec (z[t] lambda_I[t+1])
    as sparse products; lam_i's slot k holds step c0 + k."""
    _, B, N = lam_i.shape
    x_t = blocks.block_t(c0, k_len)
    if x_t is not None:
        g_in += x_t @ lam_i[:k_len].view(k_len * B, N)
    if g_rec is None or not flat.numel():
        return
    lam_next = lam_i[1:k_len + 1].view(k_len * B, N)
    if flat.numel() * 10 > k_len * B * N:  # dense enough that one BLAS product is faster
        z = torch.zeros(k_len * B * N, dtype=lam_i.dtype, device=lam_i.device)
        z[k_of * (B * N) + flat] = 1.0
        g_rec.addmm_(z.view(k_len * B, N).t(), lam_next)
    else:
        z_t = spike_matrix_t(k_of * B + flat // N, flat % N, k_len * B, N, lam_i.dtype)
        g_rec += z_t @ lam_next
