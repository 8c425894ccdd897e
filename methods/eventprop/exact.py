"""EventProp's exact mode (Wunderlich & Pehle 2021): :func:`exact_forward` and
:func:`exact_backward`.

``exact``: the same network as a continuous-time system (tau_mem dV/dt = -V + I,
tau_syn dI/dt = -I, outputs alike with tau_out). Input spikes of step t arrive at t dt; between
events the linear dynamics are integrated exactly; a hidden spike is the first time V reaches 1,
found by safeguarded Newton on the two-exponential membrane; at it V resets to 0 and W_rec[n],
W_out[n] are added to the synaptic currents at once. V_o is sampled at (t + 1) dt for step t of
the readout. The adjoint is the continuous one, integrated exactly between events:

    lambda_V(t) = e^{-s/tau_m} lambda_V(t+s)
    lambda_I(t) = e^{-s/tau_s} lambda_I(t+s) + k (e^{-s/tau_m} - e^{-s/tau_s}) lambda_V(t+s),
                  k = tau_s / (tau_m - tau_s)
    lambda_Vo += dL/dV_o at each sample time; at a spike of n (I = I_n just before it):
    lambda_V,n <- [lambda_V,n I + Sum_m W_rec[n,m](lambda_V,m - (tau_m/tau_s) lambda_I,m)
                   + Sum_c W_out[n,c]((tau_m/tau_out) lambda_Vo,c - (tau_m/tau_s) lambda_Io,c)]
                  / max(I - 1, min_slope) + reg
    dL/dw = Sum over the presynaptic spikes of lambda_I of the postsynaptic neuron at them.

In this mode the gradient is the exact gradient of the forward pass: finite differences agree to
rounding (tests/test_eventprop.py). It is slower (a Python loop over the spikes of each step).
"""

from __future__ import annotations

import math

import torch

from methods.eventprop.common import (FIRST_SPIKE, THETA, FirstSpikeTracker, Forward, Net,
                                      clip_bound, direct_terms, reg_coefficient, signal_sum)
from methods.eventprop.events import EventBlocks


def crossing(net: Net, v: torch.Tensor, i: torch.Tensor, rem: torch.Tensor) -> torch.Tensor:
    """First time u in (0, rem] at which V(u) = (V + kI) e^{-u/tau_m} - kI e^{-u/tau_s}
    reaches theta, per neuron ((Ba, N)); +inf where it does not. rem: (Ba,)."""
    c = net.consts
    a = v + c.k_h * i  # coefficient of e^{-u/tau_m}
    b = -c.k_h * i  # coefficient of e^{-u/tau_s}
    rem2 = rem[:, None].expand_as(v)
    v_end = a * torch.exp(-rem2 / c.tau_m) + b * torch.exp(-rem2 / c.tau_s)
    # extremum of V: (a / tau_m) e^{-u/tau_m} = -(b / tau_s) e^{-u/tau_s}
    ratio = (-b * c.tau_m) / (a * c.tau_s)
    rate = 1.0 / c.tau_s - 1.0 / c.tau_m
    valid = (ratio > 0) & torch.isfinite(ratio)
    u_star = torch.where(valid, torch.log(torch.where(valid, ratio, 1.0)) / rate, -1.0)
    in_range = valid & (u_star > 0) & (u_star < rem2)
    v_star = a * torch.exp(-u_star / c.tau_m) + b * torch.exp(-u_star / c.tau_s)
    rising = i > v  # sign of dV/du at u = 0
    is_max = in_range & rising
    is_min = in_range & ~rising
    crosses = torch.where(is_max, v_star > THETA, v_end > THETA)
    already = v >= THETA
    out = torch.full_like(v, math.inf)
    out[already] = 0.0
    cand = (crosses & ~already).nonzero(as_tuple=True)
    if cand[0].numel() == 0:
        return out
    a_c, b_c = a[cand], b[cand]
    lo = torch.where(is_min[cand], u_star[cand], torch.zeros_like(a_c))
    hi = torch.where(is_max[cand], u_star[cand], rem2[cand])
    out[cand] = solve(net, a_c, b_c, lo, hi)
    return out


def solve(net: Net, a, b, lo, hi):
    """Root of a e^{-u/tau_m} + b e^{-u/tau_s} = theta on [lo, hi], where the function rises
    from <= theta to > theta: Newton steps, bisection when a step leaves the bracket."""
    c = net.consts

    def f_and_df(u):
        em, es = torch.exp(-u / c.tau_m), torch.exp(-u / c.tau_s)
        return a * em + b * es - THETA, -(a / c.tau_m) * em - (b / c.tau_s) * es

    f_lo, _ = f_and_df(lo)
    f_hi, _ = f_and_df(hi)
    u = lo + (hi - lo) * (-f_lo / (f_hi - f_lo)).clamp(0.0, 1.0)
    for _ in range(100):
        f, df = f_and_df(u)
        above = f > 0
        hi = torch.where(above, u, hi)
        lo = torch.where(above, lo, u)
        nxt = u - f / df
        ok = (nxt >= lo) & (nxt <= hi) & torch.isfinite(nxt)
        nxt = torch.where(ok, nxt, 0.5 * (lo + hi))
        step = (nxt - u).abs().max()
        u = nxt
        if float(step) <= c.tol or float((hi - lo).max()) <= c.tol:
            break
    return u


def decays_over(net: Net, du: torch.Tensor):
    """exp(-du/tau_m), exp(-du/tau_s), exp(-du/tau_out) as (Ba, 1) columns, du per sample (ms)."""
    c, d = net.consts, du[:, None]
    return torch.exp(-d / c.tau_m), torch.exp(-d / c.tau_s), torch.exp(-d / c.tau_o)


def advance(net: Net, rows, du, v, i, vo, io):
    """Integrate the state of samples ``rows`` exactly over du (per sample, ms)."""
    c = net.consts
    em, es, eo = decays_over(net, du)
    vr, ir, vor, ior = v[rows], i[rows], vo[rows], io[rows]
    v[rows] = em * vr + c.k_h * (em - es) * ir
    i[rows] = es * ir
    vo[rows] = eo * vor + c.k_o * (eo - es) * ior
    io[rows] = es * ior


def exact_forward(net: Net, blocks: EventBlocks, store: bool, traces: bool = False) -> Forward:
    """The continuous-time forward pass; ``store`` keeps each step's spikes (sample, neuron,
    time in the step, I just before) for the backward pass."""
    hp, c = net.hp, net.consts
    B, T, K = blocks.B, blocks.T, hp.chunk_steps
    N, C = hp.hidden, net.n_classes
    dev, dt = net.device, net.dtype
    w_in, w_rec, w_out = net.w_in, net.w_rec, net.w_out
    tab = net.table(T)
    v = torch.zeros(B, N, device=dev, dtype=dt)
    i = torch.zeros(B, N, device=dev, dtype=dt)
    vo = torch.zeros(B, C, device=dev, dtype=dt)
    io = torch.zeros(B, C, device=dev, dtype=dt)
    counts = torch.zeros(B, N, device=dev, dtype=dt)
    active = torch.zeros(B, device=dev, dtype=torch.int64)
    all_rows = torch.arange(B, device=dev)
    weighted = tab.w is not None
    scores = torch.zeros(B, C, device=dev, dtype=dt)
    vmax = torch.full((B, C), -math.inf, device=dev, dtype=dt)
    amax = torch.zeros(B, C, device=dev, dtype=torch.int64)
    first = FirstSpikeTracker(B, C, dev, dt) if hp.loss == FIRST_SPIKE else None
    trace_list, rounds_all = [], []
    for c0 in range(0, T, K):
        k_len = min(K, T - c0)
        x_blk = blocks.block(c0, k_len)
        drive = (x_blk @ w_in).view(k_len, B, N) if x_blk is not None else None
        for k in range(k_len):
            t = c0 + k
            if drive is not None:
                i += drive[k]
            s0 = torch.zeros(B, device=dev, dtype=dt)
            rows = all_rows
            rounds = []
            fired = torch.zeros(B, N, device=dev, dtype=torch.bool)
            while rows.numel():
                u = crossing(net, v[rows], i[rows], c.dt - s0[rows])
                u_min, n_min = u.min(dim=1)
                has = torch.isfinite(u_min)
                if not bool(has.any()):
                    break
                rows, du, nn = rows[has], u_min[has], n_min[has]
                advance(net, rows, du, v, i, vo, io)
                i_minus = i[rows, nn].clone()
                v[rows, nn] = 0.0
                if w_rec is not None:
                    i.index_add_(0, rows, w_rec[nn])
                io.index_add_(0, rows, w_out[nn])
                s0[rows] += du
                counts[rows, nn] += 1.0
                fired[rows, nn] = True
                if store:
                    rounds.append((rows, nn, s0[rows].clone(), i_minus))
            advance(net, all_rows, c.dt - s0, v, i, vo, io)
            active += fired.sum(1)
            if store:
                rounds_all.append(rounds)
            if weighted:
                scores.add_(vo, alpha=tab.w_list[t])
            else:
                better = vo > vmax
                vmax = torch.where(better, vo, vmax)
                amax = torch.where(better, torch.full_like(amax, t), amax)
                if first is not None:
                    first.update(vo[None], t)
            if traces:
                trace_list.append(vo.clone())
    fw = Forward(scores=scores if weighted else vmax, counts=counts, active=active)
    if first is not None:
        first.finish(fw, vmax, amax, hp, T)
    elif not weighted:
        fw.argmax, fw.taps = amax, [(amax, 1.0)]
    if traces:
        fw.traces = torch.stack(trace_list)
    if store:
        fw.rounds = rounds_all
    return fw


def propagate_back(net: Net, rows, du, lv, li, lvo, lio):
    """Adjoint over du backward in time (exact transposed propagator) for samples rows."""
    c = net.consts
    em, es, eo = decays_over(net, du)
    lvr, lir, lvor, lior = lv[rows], li[rows], lvo[rows], lio[rows]
    lv[rows] = em * lvr
    li[rows] = es * lir + c.k_h * (em - es) * lvr
    lvo[rows] = eo * lvor
    lio[rows] = es * lior + c.k_o * (eo - es) * lvor


def exact_backward(net: Net, blocks: EventBlocks, fw: Forward,
                   error: torch.Tensor) -> dict[str, torch.Tensor]:
    """The exact adjoint, integrated between events, from the stored pass and E = dL/ds."""
    hp, c = net.hp, net.consts
    B, T, K = blocks.B, blocks.T, hp.chunk_steps
    N, C = hp.hidden, net.n_classes
    dev, dt = net.device, net.dtype
    w_out = net.w_out
    w_rec = net.w_rec if hp.recurrent else None
    tab = net.table(T)
    r_s, r_o = c.tau_m / c.tau_s, c.tau_m / c.tau_o
    clip = clip_bound(net, tab, B)
    g_in = torch.zeros_like(net.w_in)
    g_rec = torch.zeros_like(w_rec) if w_rec is not None else None
    g_out = torch.zeros_like(w_out)
    reg = None
    if hp.reg_strength > 0:
        spikes = [(rows * N + nn, torch.full_like(rows, t), i_minus)
                  for t, rounds in enumerate(fw.rounds) for rows, nn, _, i_minus in rounds]
        signal = 0.0
        if spikes:
            flat, steps, cur = (torch.cat(parts) for parts in zip(*spikes))
            p_flat = (error @ w_out.t()).reshape(-1) if tab.w is not None else None
            direct = direct_terms(net, flat, steps, error, tab, p_flat, fw.taps)
            signal = signal_sum(net, direct, cur) / flat.numel()
        reg = reg_coefficient(net, fw.counts, T, signal)
    lv = torch.zeros(B, N, device=dev, dtype=dt)
    li = torch.zeros(B, N, device=dev, dtype=dt)
    lvo = torch.zeros(B, C, device=dev, dtype=dt)
    lio = torch.zeros(B, C, device=dev, dtype=dt)
    lam_i = torch.zeros(K, B, N, device=dev, dtype=dt)
    all_rows = torch.arange(B, device=dev)
    for c0 in reversed(range(0, T, K)):
        k_len = min(K, T - c0)
        for k in range(k_len - 1, -1, -1):
            t = c0 + k
            if tab.w is not None:
                lvo.add_(error, alpha=tab.w_list[t])
            else:
                for steps, gain in fw.taps:
                    lvo.add_(torch.where(steps == t, error * gain, 0.0))
            s_cur = torch.full((B,), c.dt, device=dev, dtype=dt)
            for rows, nn, s_spk, i_minus in reversed(fw.rounds[t]):
                propagate_back(net, rows, s_cur[rows] - s_spk, lv, li, lvo, lio)
                if g_rec is not None:
                    g_rec.index_add_(0, nn, li[rows])
                g_out.index_add_(0, nn, lio[rows])
                num = lv[rows, nn] * i_minus
                num += (w_out[nn] * (r_o * lvo[rows] - r_s * lio[rows])).sum(1)
                if w_rec is not None:
                    num += (w_rec[nn] * (lv[rows] - r_s * li[rows])).sum(1)
                val = num / (i_minus - THETA).clamp(min=hp.min_slope)
                if reg is not None:
                    val += reg[nn]
                if clip > 0:
                    val.clamp_(-clip, clip)
                lv[rows, nn] = val
                s_cur[rows] = s_spk
            propagate_back(net, all_rows, s_cur, lv, li, lvo, lio)
            lam_i[k].copy_(li)
        x_t = blocks.block_t(c0, k_len)
        if x_t is not None:
            g_in += x_t @ lam_i[:k_len].reshape(k_len * B, N)
    grads = {"w_in": g_in, "w_out": g_out}
    if g_rec is not None:
        grads["w_rec"] = g_rec
    return grads
