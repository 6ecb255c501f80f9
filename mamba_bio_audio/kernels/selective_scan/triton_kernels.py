"""Triton kernels of the selective scan (Mamba-1 S6), forward and backward, and their launchers; ``triton.py`` makes
them custom ops. PyTorch twin: ``reference.selective_scan_ref``.

Layout (channel-major, L last, as ``mamba_ssm``):

* ``u, delta, z``: (batch, d_inner, L), fp32/fp16/bf16, stride 1 along L (other strides free);
* ``A``: (d_inner, N) fp32; ``D``, ``delta_bias``: (d_inner,) fp32;
* ``B, C``: (batch, G, N, L) in the input dtype (the ungrouped (batch, N, L) form is passed as G = 1);
* ``initial_state``, ``last_state``: (batch, d_inner, N) fp32.

Both kernels run one program per (channel block, batch row, segment of L) with the (BLOCK_D, N) state of
``BLOCK_D`` channels on chip in fp32, and walk their segment in chunks of ``BLOCK_L`` steps (the granularity of the
saved states), each in sub-chunks of SUB steps. Tiles are (SUB, NK, BLOCK_D, NL), state n = k · NL + l: NL lanes on
the states, the rest on channels, the step axis and NK states in each thread (``forward_layout``,
``backward_layout``), so the recurrence h_t = a_t h_{t-1} + b_t, a ``tl.associative_scan`` over the step axis, runs
sequentially in registers, and a sum over N is mostly in-thread. ``a_t = exp2(Δ_t · A log2 e)``: one exponential
per (batch, channel, step, state) forward and one again in backward (1.5 at N 16: the backward recomputes the
state entering its second sub-chunk).

The forward saves only the state entering each chunk, (batch, d_inner, n_chunks, N) fp32. The backward walks the
chunks in reverse, recomputes the chunk's states from its saved boundary state, and runs the adjoint recurrence
λ_t = C_t dy_t + a_{t+1} λ_{t+1} as a reverse associative scan. The shift a_{t+1} is folded into the scan element
(first a of the segment, product of the other a's, sum), so no shifted reload and no second exponential is needed;
the decayed previous state a_t h_{t-1} is h_t - b_t. dA, dD, dΔ-bias are reduced per (segment, batch row) on chip
and summed in PyTorch; dB, dC (shared by the channels of a group) are either atomically added into fp32 buffers or,
in deterministic mode, written as per-channel-block partials that PyTorch sums in a fixed order.

Grids with fewer than :data:`WARPS_PER_SM` warps per SM split L into segments (``scan_segments``): a first pass
(``_scan_fwd_local_kernel``, ``_scan_bwd_local_kernel``) runs each segment from a zero state, a carry pass
(``_chain_segments_kernel``, one launch; its twin ``reference.chain_segments_ref``) chains them with each segment's
decay exp(A Σ Δ), and the kernels then run every segment from its own entering state (forward) or end gradient
(backward).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from mamba_bio_audio.kernels._triton_common import launch, multiprocessor_count
from mamba_bio_audio.kernels._triton_common import or_placeholder as _or
from mamba_bio_audio.kernels.constants import SCAN_TILE_STEPS


@triton.jit
def _affine_combine(a_l, b_l, a_r, b_r):
    """Compose h -> a_l h + b_l (earlier) with h -> a_r h + b_r (later)."""
    return a_l * a_r, b_l * a_r + b_r


@triton.jit
def _adjoint_combine(a_r, q_r, s_r, a_l, q_l, s_l):
    """Reverse-scan combine for λ_t = x_t + a_{t+1} λ_{t+1}.

    A segment [i..j] is (a_i, Π_{r=i+1..j} a_r, Σ_s Π_{r=i+1..s} a_r x_s). Triton's reverse scan passes the already
    scanned later segment first (r) and the earlier one second (l).
    """
    w = q_l * a_r
    return a_l, w * q_r, s_l + w * s_r


@triton.jit
def _softplus(x):
    """softplus with mamba_ssm's threshold: the identity above 20."""
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(x)), x)


@triton.jit
def _scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr,
    out_ptr, last_ptr, states_ptr,
    batch, d_inner, L, n_chunks, channels_per_group, chunks_per_seg,
    s_u_b, s_u_d, s_dt_b, s_dt_d, s_z_b, s_z_d,
    s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n,
    s_h0_s, s_h0_b, s_h0_d, s_h0_n,
    N: tl.constexpr, NK: tl.constexpr, NL: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    SUB: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    SOFTPLUS: tl.constexpr, STORE_STATES: tl.constexpr,
):
    # Tiles are (SUB, NK, BLOCK_D, NL), state n = k · NL + l. Triton's default layout gives lanes to the last axes:
    # NL lanes on the states, then channels, warps on the rest of the channels; the step axis and NK states stay in
    # each thread. So the scan over steps runs in registers, and the sum over N is NK - 1 adds in-thread and
    # log2(NL) shuffle rounds (forward_layout). A chunk (the granularity of the saved states) is BLOCK_L // SUB
    # sub-chunks. Axis 2 of the grid splits L into segments of chunks_per_seg chunks, each started from its
    # entering state (h0 of segment s, from the carry pass) and ending in its own row of last
    # (segments, batch, d_inner, N).
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, SUB)
    n = tl.arange(0, NK)[:, None] * NL + tl.arange(0, NL)[None, :]  # (NK, NL)
    mask_n = n < N
    mask_d = offs_d < d_inner
    d3 = offs_d[None, :, None]
    n3 = n[:, None, :]
    mask_dn = mask_d[None, :, None] & mask_n[:, None, :]  # (NK, BLOCK_D, NL)
    group = (pid_d * BLOCK_D) // channels_per_group

    A = tl.load(A_ptr + d3 * N + n3, mask=mask_dn, other=0.0)
    A2 = A * 1.4426950408889634  # exp(Δ A) = exp2(Δ A log2 e)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + seg * s_h0_s + pid_b * s_h0_b + d3 * s_h0_d + n3 * s_h0_n,
                    mask=mask_dn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([NK, BLOCK_D, NL], dtype=tl.float32)

    u_row = u_ptr + pid_b * s_u_b + offs_d[None, :] * s_u_d
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[None, :] * s_dt_d
    z_row = z_ptr + pid_b * s_z_b + offs_d[None, :] * s_z_d
    out_row = out_ptr + (pid_b * d_inner + offs_d[None, :]) * L
    B_row = B_ptr + pid_b * s_B_b + group * s_B_g + n[None, :, :] * s_B_n
    C_row = C_ptr + pid_b * s_C_b + group * s_C_g + n[None, :, :] * s_C_n
    state_row = states_ptr + ((pid_b * d_inner + d3) * n_chunks) * N + n3
    is_last = (offs_s == SUB - 1)[:, None, None, None]
    is_first = (offs_s == 0)[:, None, None, None]

    subs = BLOCK_L // SUB  # sub-chunks per chunk
    k_end = tl.minimum(n_chunks, (seg + 1) * chunks_per_seg) * subs
    for k in range(seg * chunks_per_seg * subs, k_end):  # one loop over sub-chunks: states saved at chunk starts
        if STORE_STATES:
            if k % subs == 0:
                tl.store(state_row + (k // subs) * N, h, mask=mask_dn)
        t = k * SUB + offs_s
        mask_t = t < L
        mask_td = mask_t[:, None] & mask_d[None, :]
        mask_tn = mask_t[:, None, None] & mask_n[None, :, :]
        u = tl.load(u_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        dt = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt += bias[None, :]
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_td, dt, 0.0)  # padded steps: a = 1, b = 0, the state passes unchanged
        Bt = tl.load(B_row + t[:, None, None], mask=mask_tn, other=0.0).to(tl.float32)  # (SUB, NK, NL)
        Ct = tl.load(C_row + t[:, None, None], mask=mask_tn, other=0.0).to(tl.float32)

        a = tl.exp2(dt[:, None, :, None] * A2[None, :, :, :])
        b = (dt * u)[:, None, :, None] * Bt[:, :, None, :]
        # the carried state folded into the first step: the scan's b component is then h itself (its a component
        # is not used); -0.0 in the selections lets x + (-0.0) fold, so they cost nothing
        b = tl.where(is_first, b + a * h[None, :, :, :], b)
        _, hs = tl.associative_scan((a, b), 0, _affine_combine)
        y = tl.sum(tl.sum(hs * Ct[:, :, None, :], axis=1), axis=2)  # in-thread over NK, then across NL lanes
        h = tl.sum(tl.where(is_last, hs, -0.0), axis=0)

        if HAS_D:
            y += Dv[None, :] * u
        if HAS_Z:
            zt = tl.load(z_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
            y *= zt * tl.sigmoid(zt)
        tl.store(out_row + t[:, None], y, mask=mask_td)

    tl.store(last_ptr + ((seg * batch + pid_b) * d_inner + d3) * N + n3, h, mask=mask_dn)


@triton.jit
def _scan_fwd_local_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, bias_ptr, end_ptr, dtsum_ptr,
    batch, d_inner, L, n_chunks, channels_per_group, chunks_per_seg,
    s_u_b, s_u_d, s_dt_b, s_dt_d, s_B_b, s_B_g, s_B_n,
    N: tl.constexpr, NK: tl.constexpr, NL: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    SUB: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    # Pass 1 of a forward split along L: the state at the end of segment s (axis 2) started from zero, and the
    # segment's Σ Δ. The carry pass then chains the segments, h_in(s+1) = exp(A Σ Δ(s)) h_in(s) + end(s): the
    # decay of a segment is one exponential per (channel, state), not per step. Tiles as in _scan_fwd_kernel;
    # no C, z, D and no output.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, SUB)
    n = tl.arange(0, NK)[:, None] * NL + tl.arange(0, NL)[None, :]
    mask_n = n < N
    mask_d = offs_d < d_inner
    d3 = offs_d[None, :, None]
    n3 = n[:, None, :]
    mask_dn = mask_d[None, :, None] & mask_n[:, None, :]
    group = (pid_d * BLOCK_D) // channels_per_group
    A2 = tl.load(A_ptr + d3 * N + n3, mask=mask_dn, other=0.0) * 1.4426950408889634
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_row = u_ptr + pid_b * s_u_b + offs_d[None, :] * s_u_d
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[None, :] * s_dt_d
    B_row = B_ptr + pid_b * s_B_b + group * s_B_g + n[None, :, :] * s_B_n
    is_last = (offs_s == SUB - 1)[:, None, None, None]
    is_first = (offs_s == 0)[:, None, None, None]
    h = tl.zeros([NK, BLOCK_D, NL], dtype=tl.float32)
    dt_sum = tl.zeros([BLOCK_D], dtype=tl.float32)

    subs = BLOCK_L // SUB
    k_end = tl.minimum(n_chunks, (seg + 1) * chunks_per_seg) * subs
    for k in range(seg * chunks_per_seg * subs, k_end):
        t = k * SUB + offs_s
        mask_t = t < L
        mask_td = mask_t[:, None] & mask_d[None, :]
        u = tl.load(u_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        dt = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt += bias[None, :]
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_td, dt, 0.0)
        Bt = tl.load(B_row + t[:, None, None], mask=mask_t[:, None, None] & mask_n[None, :, :],
                     other=0.0).to(tl.float32)
        a = tl.exp2(dt[:, None, :, None] * A2[None, :, :, :])
        b = (dt * u)[:, None, :, None] * Bt[:, :, None, :]
        b = tl.where(is_first, b + a * h[None, :, :, :], b)
        _, hs = tl.associative_scan((a, b), 0, _affine_combine)
        h = tl.sum(tl.where(is_last, hs, -0.0), axis=0)
        dt_sum += tl.sum(dt, axis=0)

    row = seg * batch + pid_b
    tl.store(end_ptr + (row * d_inner + d3) * N + n3, h, mask=mask_dn)
    tl.store(dtsum_ptr + row * d_inner + offs_d, dt_sum, mask=mask_d)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr, dh0_ptr,
    batch, d_inner, L, n_chunks, channels_per_group, chunks_per_seg, n_slots, slot_div,
    s_u_b, s_u_d, s_dt_b, s_dt_d, s_z_b, s_z_d,
    s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n,
    N: tl.constexpr, NK: tl.constexpr, NL: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    SUB: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    SOFTPLUS: tl.constexpr, ATOMIC_BC: tl.constexpr,
):
    # Tiles are (SUB, NK, BLOCK_D, NL) as in the forward (state n = k · NL + l): each thread holds its SUB steps
    # and NK states, so both scans (the states, then the adjoint in reverse) run sequentially in its registers; the
    # sums over N (du, dΔ, y) finish across NL lanes, the sums over channels (dB, dC) across the others. A chunk
    # (one saved state) is BLOCK_L // SUB sub-chunks, unrolled: a first walk forward recomputes the state entering
    # each sub-chunk (kept in registers, H), then the sub-chunks run backwards.
    # Axis 2 of the grid splits L into segments: segment s starts (at its end) from its row of dlast (the carry
    # pass's dL/dh there) and writes its own rows of dA, dD, dΔ-bias and dh0, (segments · batch, ...).
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2)
    row = seg * batch + pid_b
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, SUB)
    n = tl.arange(0, NK)[:, None] * NL + tl.arange(0, NL)[None, :]  # (NK, NL)
    mask_n = n < N
    mask_d = offs_d < d_inner
    d3 = offs_d[None, :, None]
    n3 = n[:, None, :]
    mask_dn = mask_d[None, :, None] & mask_n[:, None, :]  # (NK, BLOCK_D, NL)
    group = (pid_d * BLOCK_D) // channels_per_group
    slot = pid_d // slot_div
    offs_j = tl.arange(0, BLOCK_L // SUB)  # sub-chunks of a chunk

    A = tl.load(A_ptr + d3 * N + n3, mask=mask_dn, other=0.0)
    A2 = A * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    dn_off = (row * d_inner + d3) * N + n3
    if HAS_DLAST:
        carry = tl.load(dlast_ptr + dn_off, mask=mask_dn, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros([NK, BLOCK_D, NL], dtype=tl.float32)
    dA_acc = tl.zeros([NK, BLOCK_D, NL], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)

    u_row = u_ptr + pid_b * s_u_b + offs_d[None, :] * s_u_d
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[None, :] * s_dt_d
    z_row = z_ptr + pid_b * s_z_b + offs_d[None, :] * s_z_d
    io_row = (pid_b * d_inner + offs_d[None, :]) * L  # dout, du, ddelta, dz: contiguous (batch, d_inner, L)
    B_row = B_ptr + pid_b * s_B_b + group * s_B_g + n[None, :, :] * s_B_n
    C_row = C_ptr + pid_b * s_C_b + group * s_C_g + n[None, :, :] * s_C_n
    dBC_off = ((pid_b * n_slots + slot) * N + n[None, :, :]) * L
    state_row = states_ptr + ((pid_b * d_inner + d3) * n_chunks) * N + n3
    # step masks; the other branch is -0.0 so that x + (-0.0) folds away and the selections cost nothing
    is_first = (offs_s == 0)[:, None, None, None]
    is_last = (offs_s == SUB - 1)[:, None, None, None]
    ones = tl.full([SUB, NK, BLOCK_D, NL], 1.0, tl.float32)

    c_end = tl.minimum(n_chunks, (seg + 1) * chunks_per_seg)
    for i in range(c_end - seg * chunks_per_seg):
        c = c_end - 1 - i
        # the state entering each sub-chunk: the saved one, then a walk forward (its exponentials come again below)
        h = tl.load(state_row + c * N, mask=mask_dn, other=0.0)
        H = tl.zeros([BLOCK_L // SUB, NK, BLOCK_D, NL], dtype=tl.float32)
        for j in tl.static_range(BLOCK_L // SUB):
            H = tl.where((offs_j == j)[:, None, None, None], h[None, :, :, :], H)
            if j < BLOCK_L // SUB - 1:
                t = c * BLOCK_L + j * SUB + offs_s
                mask_td = (t < L)[:, None] & mask_d[None, :]
                u = tl.load(u_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
                dt = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
                if HAS_BIAS:
                    dt += bias[None, :]
                if SOFTPLUS:
                    dt = _softplus(dt)
                dt = tl.where(mask_td, dt, 0.0)
                Bt = tl.load(B_row + t[:, None, None], mask=(t < L)[:, None, None] & mask_n[None, :, :],
                             other=0.0).to(tl.float32)
                a = tl.exp2(dt[:, None, :, None] * A2[None, :, :, :])
                b = (dt * u)[:, None, :, None] * Bt[:, :, None, :]
                b = tl.where(is_first, b + a * h[None, :, :, :], b)
                _, hs = tl.associative_scan((a, b), 0, _affine_combine)
                h = tl.sum(tl.where(is_last, hs, -0.0), axis=0)

        for jj in tl.static_range(BLOCK_L // SUB):
            j = BLOCK_L // SUB - 1 - jj
            h_start = tl.sum(tl.where((offs_j == j)[:, None, None, None], H, -0.0), axis=0)
            t = c * BLOCK_L + j * SUB + offs_s
            mask_t = t < L
            mask_td = mask_t[:, None] & mask_d[None, :]
            mask_tn = mask_t[:, None, None] & mask_n[None, :, :]
            u = tl.load(u_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
            dt_pre = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt_pre += bias[None, :]
            if SOFTPLUS:
                dt = _softplus(dt_pre)
            else:
                dt = dt_pre
            dt = tl.where(mask_td, dt, 0.0)
            Bt = tl.load(B_row + t[:, None, None], mask=mask_tn, other=0.0).to(tl.float32)
            Ct = tl.load(C_row + t[:, None, None], mask=mask_tn, other=0.0).to(tl.float32)
            dout = tl.load(dout_ptr + io_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)

            # recompute the sub-chunk's states, the entering state folded into the first step's b: the scan's b
            # component is then h itself (its a component is not used)
            a = tl.exp2(dt[:, None, :, None] * A2[None, :, :, :])
            dtu = dt * u
            b = dtu[:, None, :, None] * Bt[:, :, None, :]
            b_in = tl.where(is_first, b + a * h_start[None, :, :, :], b)
            _, hs = tl.associative_scan((a, b_in), 0, _affine_combine)

            if HAS_Z:
                zt = tl.load(z_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
                sig = tl.sigmoid(zt)
                y = tl.sum(tl.sum(hs * Ct[:, :, None, :], axis=1), axis=2)
                if HAS_D:
                    y += Dv[None, :] * u
                dz = dout * y * sig * (1.0 + zt * (1.0 - sig))
                tl.store(dz_ptr + io_row + t[:, None], dz, mask=mask_td)
                dy = dout * zt * sig
            else:
                dy = dout
            # what needs the states, first: hs and b are dead through the adjoint
            decayed = hs - b  # a_t h_{t-1}
            dC = tl.sum(hs * dy[:, None, :, None], axis=2)  # (SUB, NK, NL)
            if ATOMIC_BC:
                tl.atomic_add(dC_ptr + dBC_off + t[:, None, None], dC, mask=mask_tn)
            else:
                tl.store(dC_ptr + dBC_off + t[:, None, None], dC, mask=mask_tn)

            # adjoint λ_t = C_t dy_t + a_{t+1} λ_{t+1}, the later sub-chunk's a_{t+1} λ_{t+1} (or d last_state)
            # folded into the last step; with q = 1 the combine reduces to one FMA per step
            x = dy[:, None, :, None] * Ct[:, :, None, :]
            x = tl.where(is_last, x + carry[None, :, :, :], x)
            _, _, lam = tl.associative_scan((a, ones, x), 0, _adjoint_combine, reverse=True)
            carry = tl.sum(tl.where(is_first, a * lam, -0.0), axis=0)  # dL/dh before the sub-chunk

            lam_dec = lam * decayed
            dA_acc += tl.sum(lam_dec * dt[:, None, :, None], axis=0)
            lam_B = tl.sum(tl.sum(lam * Bt[:, :, None, :], axis=1), axis=2)  # Σ_n λ B
            lam_Adec = tl.sum(tl.sum(lam_dec * A[None, :, :, :], axis=1), axis=2)  # Σ_n λ A (h - b)
            du = dt * lam_B
            ddt = u * lam_B + lam_Adec
            if HAS_D:
                du += Dv[None, :] * dy
                dD_acc += tl.sum(dy * u, axis=0)
            if SOFTPLUS:
                ddt = tl.where(dt_pre <= 20.0, ddt * tl.sigmoid(dt_pre), ddt)
            ddt = tl.where(mask_td, ddt, 0.0)
            dbias_acc += tl.sum(ddt, axis=0)
            tl.store(du_ptr + io_row + t[:, None], du, mask=mask_td)
            tl.store(ddelta_ptr + io_row + t[:, None], ddt, mask=mask_td)

            dB = tl.sum(lam * dtu[:, None, :, None], axis=2)  # (SUB, NK, NL)
            if ATOMIC_BC:
                tl.atomic_add(dB_ptr + dBC_off + t[:, None, None], dB, mask=mask_tn)
            else:
                tl.store(dB_ptr + dBC_off + t[:, None, None], dB, mask=mask_tn)

    tl.store(dh0_ptr + dn_off, carry, mask=mask_dn)
    tl.store(dA_ptr + dn_off, dA_acc, mask=mask_dn)
    bd_off = row * d_inner + offs_d
    tl.store(dD_ptr + bd_off, dD_acc, mask=mask_d)
    tl.store(dbias_ptr + bd_off, dbias_acc, mask=mask_d)


@triton.jit
def _scan_bwd_local_kernel(
    delta_ptr, A_ptr, C_ptr, z_ptr, bias_ptr, dout_ptr, mu_ptr, dtsum_ptr,
    batch, d_inner, L, n_chunks, channels_per_group, chunks_per_seg, first_seg,
    s_dt_b, s_dt_d, s_z_b, s_z_d, s_C_b, s_C_g, s_C_n,
    N: tl.constexpr, NK: tl.constexpr, NL: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    SUB: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    # Pass 1 of a backward split along L: the adjoint of segment s (axis 2, from first_seg) walked back from a zero
    # seed, giving a_first λ_first, its contribution to dL/dh before the segment, and the segment's Σ Δ; the carry
    # pass then chains the segments backwards. Needs no states: λ depends on a, C and dy only. Tiles as in
    # _scan_bwd_kernel, one sub-chunk of SUB steps per iteration.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2) + first_seg
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, SUB)
    n = tl.arange(0, NK)[:, None] * NL + tl.arange(0, NL)[None, :]
    mask_n = n < N
    mask_d = offs_d < d_inner
    d3 = offs_d[None, :, None]
    n3 = n[:, None, :]
    mask_dn = mask_d[None, :, None] & mask_n[:, None, :]
    group = (pid_d * BLOCK_D) // channels_per_group
    A2 = tl.load(A_ptr + d3 * N + n3, mask=mask_dn, other=0.0) * 1.4426950408889634
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[None, :] * s_dt_d
    z_row = z_ptr + pid_b * s_z_b + offs_d[None, :] * s_z_d
    io_row = (pid_b * d_inner + offs_d[None, :]) * L
    C_row = C_ptr + pid_b * s_C_b + group * s_C_g + n[None, :, :] * s_C_n
    is_first = (offs_s == 0)[:, None, None, None]
    is_last = (offs_s == SUB - 1)[:, None, None, None]
    ones = tl.full([SUB, NK, BLOCK_D, NL], 1.0, tl.float32)
    carry = tl.zeros([NK, BLOCK_D, NL], dtype=tl.float32)
    dt_sum = tl.zeros([BLOCK_D], dtype=tl.float32)

    subs = BLOCK_L // SUB
    k_end = tl.minimum(n_chunks, (seg + 1) * chunks_per_seg) * subs
    for i in range(k_end - seg * chunks_per_seg * subs):
        t = (k_end - 1 - i) * SUB + offs_s
        mask_t = t < L
        mask_td = mask_t[:, None] & mask_d[None, :]
        dt = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt += bias[None, :]
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_td, dt, 0.0)
        dy = tl.load(dout_ptr + io_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
            dy = dy * zt * tl.sigmoid(zt)
        Ct = tl.load(C_row + t[:, None, None], mask=mask_t[:, None, None] & mask_n[None, :, :],
                     other=0.0).to(tl.float32)
        a = tl.exp2(dt[:, None, :, None] * A2[None, :, :, :])
        x = dy[:, None, :, None] * Ct[:, :, None, :]
        x = tl.where(is_last, x + carry[None, :, :, :], x)
        _, _, lam = tl.associative_scan((a, ones, x), 0, _adjoint_combine, reverse=True)
        carry = tl.sum(tl.where(is_first, a * lam, -0.0), axis=0)
        dt_sum += tl.sum(dt, axis=0)

    row = seg * batch + pid_b
    tl.store(mu_ptr + (row * d_inner + d3) * N + n3, carry, mask=mask_dn)
    tl.store(dtsum_ptr + row * d_inner + offs_d, dt_sum, mask=mask_d)


CHUNK_STEPS = 16  # the default BLOCK_L: the backward holds BLOCK_L steps per thread, so registers grow with it
TILE = 1024  # fp32 elements of one (BLOCK_L, BLOCK_D, BLOCK_N) tile at the default configuration
THREAD_ELEMENTS = 16  # elements of such a tile per thread the warp counts aim at
WARPS_PER_SM = 16  # warps a grid should keep on every SM (25 % occupancy); below it, L is split into segments
FWD_THREAD_ELEMENTS = 32  # the forward's: twice the backward's, its registers allow it (static report)


def scan_config(d_inner: int, groups: int, n_state: int, length: int,
                block_l: int | None = None, block_d: int | None = None) -> tuple[int, int]:
    """(block_d, block_l) for a launch: tiles of :data:`TILE` fp32 elements per (BLOCK_L, BLOCK_D, N).

    BLOCK_L (steps along L, the granularity of the states the forward saves for the backward) is
    :data:`CHUNK_STEPS` (16) unless given; at most ``SCAN_TILE_STEPS`` (64) is a sensible override (the backward's
    registers grow with it). ``block_d`` is a power of two and, with groups, divides d_inner // groups so that one
    program reads one group's B and C. N 16 gives BLOCK_D 4: picked from the static report (``bench kernels``:
    BLOCK_D 4, 8, 16 cost 69, 75, 76 backward instructions per element and 168-190 registers), not measured on a
    GPU.
    """
    block_n = triton.next_power_of_2(n_state)
    block_l = block_l or min(CHUNK_STEPS, SCAN_TILE_STEPS)
    if block_l & (block_l - 1):
        raise ValueError(f"block_l must be a power of two; got {block_l}")
    if block_d is None:
        block_d = max(1, TILE // (block_n * block_l))
        block_d = min(block_d, triton.next_power_of_2(d_inner))
        if groups > 1:
            per_group = d_inner // groups
            block_d = min(block_d, per_group & -per_group)  # largest power of two dividing per_group
    elif block_d & (block_d - 1) or (groups > 1 and (d_inner // groups) % block_d):
        raise ValueError(f"block_d must be a power of two dividing d_inner // groups; got {block_d}")
    return block_d, block_l


def _channel_cap(d_inner: int, groups: int) -> int:
    """The most channels one program may take: next_pow2(d_inner), or with groups the largest power of two dividing
    a group's channels (a program reads one group's B and C)."""
    per_group = d_inner // groups
    return triton.next_power_of_2(d_inner) if groups == 1 else per_group & -per_group


def forward_layout(block_d: int, n_state: int, block_l: int, channels: int, lanes_n: int | None = None) -> dict:
    """The forward's tiles (SUB, NK, BLOCK_D, NL) and warps. NL lanes on the states (``lanes_n``; by default 4 for
    N 8 to 32, N / 4 above, at most 32), NK = BLOCK_N / NL states in each thread, 32 / NL lanes on channels, warps
    (1 to 8) on the rest of the channels, SUB steps per sub-chunk so that a thread holds about
    :data:`FWD_THREAD_ELEMENTS` elements of a tile. BLOCK_D is at least the channels of one warp (``block_d`` from
    ``scan_config`` otherwise) and at most ``channels`` (:func:`_channel_cap`). N 16: NL 4, NK 4, BLOCK_D 8, 1 warp,
    SUB 8."""
    block_n = triton.next_power_of_2(n_state)
    nl = lanes_n or min(32, block_n, max(4, block_n // 4))
    return _layout(block_d, block_n, block_l, channels, nl, FWD_THREAD_ELEMENTS)


def _layout(block_d: int, block_n: int, block_l: int, channels: int, nl: int, thread_elements: int) -> dict:
    lanes_d = 32 // nl
    block_d = min(max(block_d, lanes_d), channels)
    num_warps = max(1, min(8, block_d // lanes_d))
    nk = block_n // nl
    sub = max(1, min(block_l, thread_elements // nk), block_l // 4)  # at most 4 sub-chunks per chunk
    return {"BLOCK_D": block_d, "NK": nk, "NL": nl, "SUB": sub, "num_warps": num_warps}


def forward_plan(batch: int, d_inner: int, groups: int, n_state: int, block_l: int, block_d: int,
                 sm_count: int) -> dict:
    """The forward's layout for a launch, from the static report (``bench kernels``; N 16, bf16, sm_90): NL 4 costs
    12.5 thread-instructions per (channel, step, state) at 122 registers (25 % occupancy; the states on 16 lanes
    cost 22), NL 8 costs 14.7 but has twice the warps. The default layout, unless its grid leaves fewer than
    :data:`WARPS_PER_SM` warps per SM and twice the lanes on the states reaches that (batch 8, d_inner 2048 on 132
    SMs); else the default, and :func:`scan_segments` splits L (a split costs a whole exponential pass)."""
    channels = _channel_cap(d_inner, groups)
    base = forward_layout(block_d, n_state, block_l, channels)

    def warps(layout):
        return triton.cdiv(d_inner, layout["BLOCK_D"]) * batch * layout["num_warps"]

    if warps(base) < WARPS_PER_SM * sm_count and base["NL"] < min(32, triton.next_power_of_2(n_state)):
        wider = forward_layout(block_d, n_state, block_l, channels, 2 * base["NL"])
        if warps(wider) >= WARPS_PER_SM * sm_count:
            return wider
    return base


def backward_layout(block_d: int, n_state: int, block_l: int, channels: int, lanes_n: int | None = None) -> dict:
    """The backward's tiles (SUB, NK, BLOCK_D, NL) and warps, as :func:`forward_layout` but about
    :data:`THREAD_ELEMENTS` elements per thread (the backward holds about ten such tiles), at most 4 sub-chunks per
    chunk, and NL 8 for N 16 to 32 (N / 4 above, at most 32). N 16: NL 8, NK 2, BLOCK_D 4, 1 warp, SUB 8, two
    sub-chunks per 16-step chunk. N 256 (NK 8) puts 4 warps on the in-thread states (1 warp spilled 0.9–2.3 KB).
    Chosen from the static report (``bench kernels``, N 16, bf16, sm_90, thread-instructions per (channel, step,
    state) / registers; re-read 2026-12-05 at batch 1 × 1024 × 2^16): NL 16 (the states on 16 lanes, no sub-chunks)
    69 / 211, NL 8 53 / 227, NL 4 51 / 249 but half the warps; 8 elements per thread instead of 16 replicate the
    per-(step, channel) work across lanes (109 and 88)."""
    block_n = triton.next_power_of_2(n_state)
    nl = lanes_n or min(32, block_n, max(8, block_n // 4))
    layout = _layout(block_d, block_n, block_l, channels, nl, THREAD_ELEMENTS)
    if layout["NK"] > 4 and layout["num_warps"] == 1:  # N 256: warps on the in-thread states (NK 8: 4 warps)
        layout["num_warps"] = layout["NK"] // 2
    return layout


def _launch_strides(u, delta, z, B, C):
    z_strides = (z.stride(0), z.stride(1)) if z is not None else (0, 0)
    return (u.stride(0), u.stride(1), delta.stride(0), delta.stride(1), *z_strides,
            B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2))


def scan_segments(programs: int, num_warps: int, n_chunks: int, sm_count: int, segments: int = 0) -> tuple[int, int]:
    """(segments, chunks per segment) of a launch split along L. ``segments`` 0 picks the fewest that give the
    grid :data:`WARPS_PER_SM` warps on each of ``sm_count`` SMs (batch 1, d_inner 1024, N 16 on an H100: 128
    one-warp forward programs, 17 segments; 256 backward ones, 9; batch 8, d_inner 2048: one), at most one per
    chunk; a split costs a first pass over the sequence (one more exponential per element) and a carry pass over
    the segments."""
    if segments < 0:
        raise ValueError(f"segments must be 0 (automatic) or positive; got {segments}")
    if not segments:
        segments = triton.cdiv(WARPS_PER_SM * sm_count, max(1, programs * num_warps))
    per_seg = triton.cdiv(n_chunks, max(1, min(segments, n_chunks)))
    return triton.cdiv(n_chunks, per_seg), per_seg


@triton.jit
def _chain_segments_kernel(A, start, parts, dt_sums, entries, n_seg, rows, d_inner,
                           N: tl.constexpr, HAS_START: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr):
    """One program per BLOCK (batch, channel, state) elements of the carry pass, walking the segments in order."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    size = rows * N  # rows = batch * d_inner
    mask = offs < size
    row = offs // N
    a = tl.load(A + (row % d_inner) * N + offs % N, mask=mask, other=0.0)
    first = n_seg - 1 if REVERSE else 0
    if HAS_START:
        h = tl.load(start + offs, mask=mask, other=0.0)
    else:
        h = tl.zeros([BLOCK], dtype=tl.float32)
    tl.store(entries + first * size + offs, h, mask=mask)
    for i in range(1, n_seg):
        prev = n_seg - i if REVERSE else i - 1
        seg = n_seg - 1 - i if REVERSE else i
        dt = tl.load(dt_sums + prev * rows + row, mask=mask, other=0.0)
        h = tl.exp(a * dt) * h + tl.load(parts + prev * size + offs, mask=mask, other=0.0)
        tl.store(entries + seg * size + offs, h, mask=mask)


CHAIN_BLOCK = 256  # elements per program of the carry pass: (batch, d_inner, N) 16K at batch 1, 1024, 16: 64 programs


def chain_segments(A, start, parts, dt_sums, reverse: bool):
    """The carry pass over segments in one launch; ``reference.chain_segments_ref`` is its PyTorch twin (same
    signature and result). ``parts`` (segments, batch, d_inner, N) fp32 contiguous, ``dt_sums`` (segments, batch,
    d_inner) fp32 contiguous, ``A`` (d_inner, N) fp32, ``start`` (batch, d_inner, N) fp32 or None. Returns the
    entries, shaped as ``parts``."""
    n_seg, batch, d_inner, n_state = parts.shape
    entries = torch.empty_like(parts)
    rows = batch * d_inner
    launch(_chain_segments_kernel, (triton.cdiv(rows * n_state, CHAIN_BLOCK),), A.contiguous(),
           _or(None if start is None else start.contiguous(), parts), parts, dt_sums, entries, n_seg, rows, d_inner,
           N=n_state, HAS_START=start is not None, REVERSE=reverse, BLOCK=CHAIN_BLOCK)
    return entries


def scan_forward(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus: bool,
                 block_l: int, block_d: int, save_states: bool, segments: int = 0, lanes: int = 0):
    """Launch the forward. Tensors as in the module docstring (L-stride 1; B, C 4-D).

    Returns out (batch, d_inner, L) in u.dtype, last_state (batch, d_inner, N) fp32 and the chunk-entry states
    (batch, d_inner, n_chunks, N) fp32 (empty (0,) unless ``save_states``). Grid: (cdiv(d_inner, block_d), batch,
    segments) (:func:`scan_segments`; its BLOCK_D from :func:`forward_plan`, not necessarily ``block_d``); with
    more than one segment, ``_scan_fwd_local_kernel`` and the carry pass first give each segment its entering
    state. ``lanes`` (a power of two, at most min(32, next_pow2(N)); 0: :func:`forward_plan` chooses) fixes the
    layout's lanes on the states, NL.
    """
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    n_chunks = triton.cdiv(length, block_l)
    dev = u.device
    out = torch.empty((batch, d_inner, length), dtype=u.dtype, device=dev)
    states = (torch.empty((batch, d_inner, n_chunks, n_state), dtype=torch.float32, device=dev)
              if save_states else torch.empty(0, dtype=torch.float32, device=dev))
    if batch == 0 or d_inner == 0:
        return out, torch.empty((batch, d_inner, n_state), dtype=torch.float32, device=dev), states
    sm_count = multiprocessor_count(dev)
    layout = (forward_plan(batch, d_inner, groups, n_state, block_l, block_d, sm_count) if not lanes else
              forward_layout(block_d, n_state, block_l, _channel_cap(d_inner, groups), lanes))
    n_blocks = triton.cdiv(d_inner, layout["BLOCK_D"])
    n_seg, per_seg = scan_segments(n_blocks * batch, layout["num_warps"], n_chunks, sm_count, segments)
    ends = torch.empty((n_seg, batch, d_inner, n_state), dtype=torch.float32, device=dev)
    common = dict(N=n_state, BLOCK_L=block_l, HAS_BIAS=delta_bias is not None, SOFTPLUS=delta_softplus, **layout)
    h0 = initial_state
    if n_seg > 1:
        local_ends = torch.empty_like(ends)
        dt_sums = torch.empty((n_seg, batch, d_inner), dtype=torch.float32, device=dev)
        launch(
            _scan_fwd_local_kernel, (n_blocks, batch, n_seg - 1), u, delta, A, B, _or(delta_bias, A),
            local_ends, dt_sums, batch, d_inner, length, n_chunks, d_inner // groups, per_seg,
            u.stride(0), u.stride(1), delta.stride(0), delta.stride(1), B.stride(0), B.stride(1), B.stride(2),
            **common,
        )
        h0 = chain_segments(A, h0, local_ends, dt_sums, reverse=False)
        h0_strides = h0.stride()
    else:
        h0_strides = (0, *h0.stride()) if h0 is not None else (0, 0, 0, 0)
    launch(
        _scan_fwd_kernel, (n_blocks, batch, n_seg), u, delta, A, B, C, _or(D, A), _or(z, u), _or(delta_bias, A),
        _or(h0, ends), out, ends, states,
        batch, d_inner, length, n_chunks, d_inner // groups, per_seg,
        *_launch_strides(u, delta, z, B, C), *h0_strides,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_H0=h0 is not None, STORE_STATES=save_states, **common,
    )
    return out, ends[-1] if n_seg == 1 else ends[-1].clone(), states


def scan_backward(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus: bool,
                  block_l: int, block_d: int, deterministic: bool, segments: int = 0, lanes: int = 0):
    """Launch the backward from the saved chunk-entry ``states``; ``dout`` (batch, d_inner, L), ``dlast``
    (batch, d_inner, N) or None. Grid: (cdiv(d_inner, block_d), batch, segments) (:func:`scan_segments`, chosen
    for this launch: the saved states allow any split); with more than one segment, ``_scan_bwd_local_kernel`` and
    the carry pass first give each segment dL/dh at its end. ``lanes`` fixes :func:`backward_layout`'s NL (0: its
    default).

    Returns, in the forward's input order, du, ddelta (input dtypes), dA (d_inner, N) fp32, dB, dC (batch, G, N, L)
    in B's / C's dtype, dD (d_inner,) fp32, dz (z's dtype; empty (0,) without z), ddelta_bias (d_inner,) fp32,
    dinitial_state (batch, d_inner, N) fp32.
    """
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    n_chunks = triton.cdiv(length, block_l)
    layout = backward_layout(block_d, n_state, block_l, _channel_cap(d_inner, groups), lanes or None)
    n_blocks = triton.cdiv(d_inner, layout["BLOCK_D"])
    blocks_per_group = n_blocks // groups
    dev = u.device
    n_seg, per_seg = scan_segments(n_blocks * batch, layout["num_warps"], n_chunks, multiprocessor_count(dev),
                                   segments)
    dout = dout.contiguous()
    dlast = dlast.contiguous() if dlast is not None else None
    du = torch.empty((batch, d_inner, length), dtype=u.dtype, device=dev)
    ddelta = torch.empty((batch, d_inner, length), dtype=delta.dtype, device=dev)
    dz = torch.empty((batch, d_inner, length), dtype=z.dtype, device=dev) if z is not None else u.new_empty(0)
    rows = n_seg * batch  # per (segment, batch row) partials, summed below
    dA = torch.empty((rows, d_inner, n_state), dtype=torch.float32, device=dev)
    dD = torch.empty((rows, d_inner), dtype=torch.float32, device=dev)
    dbias = torch.empty((rows, d_inner), dtype=torch.float32, device=dev)
    dh0 = torch.empty((n_seg, batch, d_inner, n_state), dtype=torch.float32, device=dev)
    # dB/dC: one writer per slot (a group, or a channel block in deterministic mode), or atomics into the group
    atomic = blocks_per_group > 1 and not deterministic
    n_slots = groups if atomic or blocks_per_group == 1 else n_blocks
    alloc = torch.zeros if atomic else torch.empty
    dB = alloc((batch, n_slots, n_state, length), dtype=torch.float32, device=dev)
    dC = alloc((batch, n_slots, n_state, length), dtype=torch.float32, device=dev)
    common = dict(N=n_state, BLOCK_L=block_l, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
                  SOFTPLUS=delta_softplus, **layout)
    if batch and d_inner:
        if n_seg > 1:
            mus = torch.empty_like(dh0)
            dt_sums = torch.empty((n_seg, batch, d_inner), dtype=torch.float32, device=dev)
            z_strides = (z.stride(0), z.stride(1)) if z is not None else (0, 0)
            launch(
                _scan_bwd_local_kernel, (n_blocks, batch, n_seg - 1), delta, A, C, _or(z, u), _or(delta_bias, A),
                dout, mus, dt_sums, batch, d_inner, length, n_chunks, d_inner // groups, per_seg, 1,
                delta.stride(0), delta.stride(1), *z_strides, C.stride(0), C.stride(1), C.stride(2),
                **common,
            )
            dlast = chain_segments(A, dlast, mus, dt_sums, reverse=True)
        launch(
            _scan_bwd_kernel, (n_blocks, batch, n_seg),
            u, delta, A, B, C, _or(D, A), _or(z, u), _or(delta_bias, A), states, dout, _or(dlast, dh0),
            du, ddelta, dz, dA, dD, dbias, dB, dC, dh0,
            batch, d_inner, length, n_chunks, d_inner // groups, per_seg, n_slots,
            blocks_per_group if atomic else 1,
            *_launch_strides(u, delta, z, B, C),
            HAS_D=D is not None, HAS_DLAST=dlast is not None, ATOMIC_BC=atomic, **common,
        )
    if n_slots != groups:  # deterministic partials: fixed-order sum over the channel blocks of each group
        dB = dB.view(batch, groups, blocks_per_group, n_state, length).sum(2)
        dC = dC.view(batch, groups, blocks_per_group, n_state, length).sum(2)
    return (du, ddelta, dA.sum(0), dB.to(B.dtype), dC.to(C.dtype), dD.sum(0), dz, dbias.sum(0), dh0[0] if n_seg == 1 else dh0[0].clone())
