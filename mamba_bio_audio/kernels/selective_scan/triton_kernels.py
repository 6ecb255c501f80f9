"""Triton kernels of the selective scan (Mamba-1 S6), forward and backward, and their launchers; ``triton.py`` makes
them custom ops. PyTorch twin: ``reference.selective_scan_ref``.

Layout (channel-major, L last, as ``mamba_ssm``):

* ``u, delta, z``: (batch, d_inner, L), fp32/fp16/bf16, stride 1 along L (other strides free);
* ``A``: (d_inner, N) fp32; ``D``, ``delta_bias``: (d_inner,) fp32;
* ``B, C``: (batch, G, N, L) in the input dtype (the ungrouped (batch, N, L) form is passed as G = 1);
* ``initial_state``, ``last_state``: (batch, d_inner, N) fp32.

Both kernels run one program per (channel block, batch) with the (BLOCK_D, N) state of ``BLOCK_D`` channels on chip
in fp32, and walk L in chunks of ``BLOCK_L`` steps. Inside a chunk the recurrence h_t = a_t h_{t-1} + b_t is a
``tl.associative_scan`` over the step axis; the state is carried from chunk to chunk. The forward's tiles are
(SUB, BLOCK_D, BLOCK_N), the step axis first, over BLOCK_L // SUB sub-chunks (``forward_layout``): the scan then runs
inside each thread. The backward's are (BLOCK_D, N, BLOCK_L).
B and C tiles are loaded once per channel block (all BLOCK_D channels share a group). ``a_t = exp2(Δ_t · A log2 e)``:
one exponential per (batch, channel, step, state) forward and one again in backward.

The forward saves only the state entering each chunk, (batch, d_inner, n_chunks, N) fp32. The backward walks the
chunks in reverse, recomputes the chunk's states from its saved boundary state, and runs the adjoint recurrence
λ_t = C_t dy_t + a_{t+1} λ_{t+1} as a reverse associative scan. The shift a_{t+1} is folded into the scan element
(first a of the segment, product of the other a's, sum), so no shifted reload and no second exponential is needed;
the decayed previous state a_t h_{t-1} is h_t - b_t. dA, dD, dΔ-bias are reduced per batch row on chip and summed
over batch in PyTorch; dB, dC (shared by the channels of a group) are either atomically added into fp32 buffers or,
in deterministic mode, written as per-channel-block partials that PyTorch sums in a fixed order.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from mamba_bio_audio.kernels._triton_common import launch
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
    d_inner, L, n_chunks, channels_per_group,
    s_u_b, s_u_d, s_dt_b, s_dt_d, s_z_b, s_z_d,
    s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n,
    s_h0_b, s_h0_d, s_h0_n,
    N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, SUB: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr,
    SOFTPLUS: tl.constexpr, STORE_STATES: tl.constexpr,
):
    # Tiles are (SUB, BLOCK_D, BLOCK_N), the scan axis first: Triton's default layout puts lanes on the last axes
    # (N, then channels), so each thread holds its SUB steps and the scan over them runs in registers; only the
    # sum over N crosses lanes. A chunk (the granularity of the saved states) is BLOCK_L // SUB such sub-chunks.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_s = tl.arange(0, SUB)
    mask_d = offs_d < d_inner
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = (pid_d * BLOCK_D) // channels_per_group

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    A2 = A * 1.4426950408889634  # exp(Δ A) = exp2(Δ A log2 e)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + pid_b * s_h0_b + offs_d[:, None] * s_h0_d + offs_n[None, :] * s_h0_n,
                    mask=mask_dn, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)

    u_row = u_ptr + pid_b * s_u_b + offs_d[None, :] * s_u_d
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[None, :] * s_dt_d
    z_row = z_ptr + pid_b * s_z_b + offs_d[None, :] * s_z_d
    out_row = out_ptr + (pid_b * d_inner + offs_d[None, :]) * L
    B_row = B_ptr + pid_b * s_B_b + group * s_B_g + offs_n[None, :] * s_B_n
    C_row = C_ptr + pid_b * s_C_b + group * s_C_g + offs_n[None, :] * s_C_n
    state_row = states_ptr + ((pid_b * d_inner + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]
    is_last = (offs_s == SUB - 1)[:, None, None]

    subs = BLOCK_L // SUB  # sub-chunks per chunk
    for k in range(n_chunks * subs):  # one loop over sub-chunks: the states are saved at chunk starts
        if STORE_STATES:
            if k % subs == 0:
                tl.store(state_row + (k // subs) * N, h, mask=mask_dn)
        t = k * SUB + offs_s
        mask_t = t < L
        mask_td = mask_t[:, None] & mask_d[None, :]
        mask_tn = mask_t[:, None] & mask_n[None, :]
        u = tl.load(u_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        dt = tl.load(dt_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt += bias[None, :]
        if SOFTPLUS:
            dt = _softplus(dt)
        dt = tl.where(mask_td, dt, 0.0)  # padded steps: a = 1, b = 0, the state passes unchanged
        Bt = tl.load(B_row + t[:, None], mask=mask_tn, other=0.0).to(tl.float32)
        Ct = tl.load(C_row + t[:, None], mask=mask_tn, other=0.0).to(tl.float32)

        a = tl.exp2(dt[:, :, None] * A2[None, :, :])
        b = (dt * u)[:, :, None] * Bt[:, None, :]
        a_cum, b_cum = tl.associative_scan((a, b), 0, _affine_combine)
        hs = a_cum * h[None, :, :] + b_cum
        y = tl.sum(hs * Ct[:, None, :], axis=2)
        h = tl.sum(tl.where(is_last, hs, 0.0), axis=0)

        if HAS_D:
            y += Dv[None, :] * u
        if HAS_Z:
            zt = tl.load(z_row + t[:, None], mask=mask_td, other=0.0).to(tl.float32)
            y *= zt * tl.sigmoid(zt)
        tl.store(out_row + t[:, None], y, mask=mask_td)

    tl.store(last_ptr + (pid_b * d_inner + offs_d[:, None]) * N + offs_n[None, :], h, mask=mask_dn)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, states_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dD_ptr, dbias_ptr, dB_ptr, dC_ptr, dh0_ptr,
    d_inner, L, n_chunks, channels_per_group, n_slots, slot_div,
    s_u_b, s_u_d, s_dt_b, s_dt_d, s_z_b, s_z_d,
    s_B_b, s_B_g, s_B_n, s_C_b, s_C_g, s_C_n,
    N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    SOFTPLUS: tl.constexpr, ATOMIC_BC: tl.constexpr,
):
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_c = tl.arange(0, BLOCK_L)
    mask_d = offs_d < d_inner
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    group = (pid_d * BLOCK_D) // channels_per_group
    slot = pid_d // slot_div

    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    A2 = A * 1.4426950408889634
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    dn_off = (pid_b * d_inner + offs_d[:, None]) * N + offs_n[None, :]
    if HAS_DLAST:
        carry = tl.load(dlast_ptr + dn_off, mask=mask_dn, other=0.0).to(tl.float32)
    else:
        carry = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dA_acc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)

    u_row = u_ptr + pid_b * s_u_b + offs_d[:, None] * s_u_d
    dt_row = delta_ptr + pid_b * s_dt_b + offs_d[:, None] * s_dt_d
    z_row = z_ptr + pid_b * s_z_b + offs_d[:, None] * s_z_d
    io_row = (pid_b * d_inner + offs_d[:, None]) * L  # dout, du, ddelta, dz: contiguous (batch, d_inner, L)
    B_row = B_ptr + pid_b * s_B_b + group * s_B_g + offs_n[:, None] * s_B_n
    C_row = C_ptr + pid_b * s_C_b + group * s_C_g + offs_n[:, None] * s_C_n
    dBC_off = ((pid_b * n_slots + slot) * N + offs_n[:, None]) * L
    state_row = states_ptr + ((pid_b * d_inner + offs_d[:, None]) * n_chunks) * N + offs_n[None, :]
    is_first = (offs_c == 0)[None, None, :]

    for i in range(n_chunks):
        c = n_chunks - 1 - i
        t = c * BLOCK_L + offs_c
        mask_t = t < L
        mask_dt = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]
        h_start = tl.load(state_row + c * N, mask=mask_dn, other=0.0)
        u = tl.load(u_row + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        dt_pre = tl.load(dt_row + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt_pre += bias[:, None]
        if SOFTPLUS:
            dt = _softplus(dt_pre)
        else:
            dt = dt_pre
        dt = tl.where(mask_dt, dt, 0.0)
        Bt = tl.load(B_row + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)
        Ct = tl.load(C_row + t[None, :], mask=mask_nt, other=0.0).to(tl.float32)
        dout = tl.load(dout_ptr + io_row + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)

        # recompute the chunk's states from its saved boundary state
        a = tl.exp2(dt[:, None, :] * A2[:, :, None])
        b = (dt * u)[:, None, :] * Bt[None, :, :]
        a_cum, b_cum = tl.associative_scan((a, b), 2, _affine_combine)
        hs = a_cum * h_start[:, :, None] + b_cum

        if HAS_Z:
            zt = tl.load(z_row + t[None, :], mask=mask_dt, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            y = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                y += Dv[:, None] * u
            dz = dout * y * sig * (1.0 + zt * (1.0 - sig))
            tl.store(dz_ptr + io_row + t[None, :], dz, mask=mask_dt)
            dy = dout * zt * sig
        else:
            dy = dout

        # adjoint: λ_t = C_t dy_t + a_{t+1} λ_{t+1}, seeded by the carry from the next chunk (or d last_state)
        x = dy[:, None, :] * Ct[None, :, :]
        ones = tl.full([BLOCK_D, BLOCK_N, BLOCK_L], 1.0, tl.float32)
        _, q, s = tl.associative_scan((a, ones, x), 2, _adjoint_combine, reverse=True)
        lam = s + q * carry[:, :, None]
        carry = tl.sum(tl.where(is_first, a * lam, 0.0), axis=2)  # dL/dh before the chunk

        decayed = hs - b  # a_t h_{t-1}
        lam_dt = lam * dt[:, None, :]
        dA_acc += tl.sum(lam_dt * decayed, axis=2)
        ddt = tl.sum(lam * (Bt[None, :, :] * u[:, None, :] + A[:, :, None] * decayed), axis=1)
        du = tl.sum(lam_dt * Bt[None, :, :], axis=1)
        if HAS_D:
            du += Dv[:, None] * dy
            dD_acc += tl.sum(dy * u, axis=1)
        if SOFTPLUS:
            ddt = tl.where(dt_pre <= 20.0, ddt * tl.sigmoid(dt_pre), ddt)
        ddt = tl.where(mask_dt, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=1)
        tl.store(du_ptr + io_row + t[None, :], du, mask=mask_dt)
        tl.store(ddelta_ptr + io_row + t[None, :], ddt, mask=mask_dt)

        dB = tl.sum(lam_dt * u[:, None, :], axis=0)
        dC = tl.sum(hs * dy[:, None, :], axis=0)
        if ATOMIC_BC:
            tl.atomic_add(dB_ptr + dBC_off + t[None, :], dB, mask=mask_nt)
            tl.atomic_add(dC_ptr + dBC_off + t[None, :], dC, mask=mask_nt)
        else:
            tl.store(dB_ptr + dBC_off + t[None, :], dB, mask=mask_nt)
            tl.store(dC_ptr + dBC_off + t[None, :], dC, mask=mask_nt)

    tl.store(dh0_ptr + dn_off, carry, mask=mask_dn)
    tl.store(dA_ptr + dn_off, dA_acc, mask=mask_dn)
    bd_off = pid_b * d_inner + offs_d
    tl.store(dD_ptr + bd_off, dD_acc, mask=mask_d)
    tl.store(dbias_ptr + bd_off, dbias_acc, mask=mask_d)


TILE = 4096  # fp32 elements of one (BLOCK_D, BLOCK_N, BLOCK_L) tile at the default configuration


def scan_config(d_inner: int, groups: int, n_state: int, length: int,
                block_l: int | None = None, block_d: int | None = None) -> tuple[int, int]:
    """(block_d, block_l) for a launch: tiles of about :data:`TILE` fp32 elements per (BLOCK_D, N, BLOCK_L).

    BLOCK_L (steps along L) = next_pow2(L) clamped to 16..SCAN_TILE_STEPS (64), and at most TILE / BLOCK_N (N 128:
    32, N 256: 16) so that one channel's tile stays within TILE. ``block_d`` is a power of two and, with groups,
    divides d_inner // groups so that one program reads one group's B and C. Chosen from the static report (``bench kernels``), not measured on a GPU.
    """
    block_n = triton.next_power_of_2(n_state)
    fit = max(16, triton.next_power_of_2(max(length, 1)))
    block_l = block_l or min(SCAN_TILE_STEPS, fit, max(16, TILE // block_n))
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


def forward_layout(block_d: int, n_state: int, block_l: int) -> tuple[int, int]:
    """(SUB, num_warps) of the forward. Lanes go to the state axis first (min(32, BLOCK_N) of them), then to
    channels; warps cover the rest of the BLOCK_D channels (1 to 8), so no warp splits the scan axis; SUB steps per
    sub-chunk keep about 16 elements per thread per tile (N 16: BLOCK_D 4, 2 warps, SUB 16). Chosen from the
    static report (``bench kernels``): 24 instead of 65 thread-instructions per (channel, step, state)."""
    block_n = triton.next_power_of_2(n_state)
    lanes_d = 32 // min(32, block_n)
    num_warps = max(1, min(8, block_d // lanes_d))
    return max(1, min(block_l, 16 * 32 * num_warps // (block_d * block_n))), num_warps  # powers of two


def backward_num_warps(block_d: int, n_state: int, block_l: int) -> int:
    """Warps of a backward program: 8 for a full :data:`TILE` (its ~250 registers then fit without spilling; at 4
    warps it spilled 592 B on sm_90 and 972 B on sm_80), 4 below it."""
    return 8 if block_d * triton.next_power_of_2(n_state) * block_l >= TILE else 4


def _launch_strides(u, delta, z, B, C):
    z_strides = (z.stride(0), z.stride(1)) if z is not None else (0, 0)
    return (u.stride(0), u.stride(1), delta.stride(0), delta.stride(1), *z_strides,
            B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2))


def scan_forward(u, delta, A, B, C, D, z, delta_bias, initial_state, delta_softplus: bool,
                 block_l: int, block_d: int, save_states: bool):
    """Launch the forward kernel. Tensors as in the module docstring (L-stride 1; B, C 4-D).

    Returns out (batch, d_inner, L) in u.dtype, last_state (batch, d_inner, N) fp32 and the chunk-entry states
    (batch, d_inner, n_chunks, N) fp32 (empty (0,) unless ``save_states``). Grid: (cdiv(d_inner, block_d), batch).
    """
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    n_chunks = triton.cdiv(length, block_l)
    out = torch.empty((batch, d_inner, length), dtype=u.dtype, device=u.device)
    last = torch.empty((batch, d_inner, n_state), dtype=torch.float32, device=u.device)
    states = (torch.empty((batch, d_inner, n_chunks, n_state), dtype=torch.float32, device=u.device)
              if save_states else torch.empty(0, dtype=torch.float32, device=u.device))
    grid = (triton.cdiv(d_inner, block_d), batch)
    if batch == 0 or d_inner == 0:
        return out, last, states
    h0 = initial_state
    sub, num_warps = forward_layout(block_d, n_state, block_l)
    launch(
        _scan_fwd_kernel, grid, u, delta, A, B, C, _or(D, A), _or(z, u), _or(delta_bias, A), _or(h0, last),
        out, last, states,
        d_inner, length, n_chunks, d_inner // groups,
        *_launch_strides(u, delta, z, B, C),
        *((h0.stride(0), h0.stride(1), h0.stride(2)) if h0 is not None else (0, 0, 0)),
        N=n_state, BLOCK_N=triton.next_power_of_2(n_state), BLOCK_D=block_d, BLOCK_L=block_l, SUB=sub,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, HAS_H0=h0 is not None,
        SOFTPLUS=delta_softplus, STORE_STATES=save_states,
        num_warps=num_warps,
    )
    return out, last, states


def scan_backward(u, delta, A, B, C, D, z, delta_bias, states, dout, dlast, delta_softplus: bool,
                  block_l: int, block_d: int, deterministic: bool):
    """Launch the backward kernel from the saved chunk-entry ``states``; ``dout`` (batch, d_inner, L), ``dlast``
    (batch, d_inner, N) or None. Grid: (cdiv(d_inner, block_d), batch).

    Returns, in the forward's input order, du, ddelta (input dtypes), dA (d_inner, N) fp32, dB, dC (batch, G, N, L)
    in B's / C's dtype, dD (d_inner,) fp32, dz (z's dtype; empty (0,) without z), ddelta_bias (d_inner,) fp32,
    dinitial_state (batch, d_inner, N) fp32.
    """
    batch, d_inner, length = u.shape
    n_state = A.shape[1]
    groups = B.shape[1]
    n_chunks = triton.cdiv(length, block_l)
    n_blocks = triton.cdiv(d_inner, block_d)
    blocks_per_group = n_blocks // groups
    dev = u.device
    dout = dout.contiguous()
    dlast = dlast.contiguous() if dlast is not None else None
    du = torch.empty((batch, d_inner, length), dtype=u.dtype, device=dev)
    ddelta = torch.empty((batch, d_inner, length), dtype=delta.dtype, device=dev)
    dz = torch.empty((batch, d_inner, length), dtype=z.dtype, device=dev) if z is not None else u.new_empty(0)
    dA = torch.empty((batch, d_inner, n_state), dtype=torch.float32, device=dev)
    dD = torch.empty((batch, d_inner), dtype=torch.float32, device=dev)
    dbias = torch.empty((batch, d_inner), dtype=torch.float32, device=dev)
    dh0 = torch.empty((batch, d_inner, n_state), dtype=torch.float32, device=dev)
    # dB/dC: one writer per slot (a group, or a channel block in deterministic mode), or atomics into the group
    atomic = blocks_per_group > 1 and not deterministic
    n_slots = groups if atomic or blocks_per_group == 1 else n_blocks
    alloc = torch.zeros if atomic else torch.empty
    dB = alloc((batch, n_slots, n_state, length), dtype=torch.float32, device=dev)
    dC = alloc((batch, n_slots, n_state, length), dtype=torch.float32, device=dev)
    if batch and d_inner:
        launch(
            _scan_bwd_kernel, (n_blocks, batch),
            u, delta, A, B, C, _or(D, A), _or(z, u), _or(delta_bias, A), states, dout, _or(dlast, dh0),
            du, ddelta, dz, dA, dD, dbias, dB, dC, dh0,
            d_inner, length, n_chunks, d_inner // groups, n_slots, blocks_per_group if atomic else 1,
            *_launch_strides(u, delta, z, B, C),
            N=n_state, BLOCK_N=triton.next_power_of_2(n_state), BLOCK_D=block_d, BLOCK_L=block_l,
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, HAS_DLAST=dlast is not None,
            SOFTPLUS=delta_softplus, ATOMIC_BC=atomic,
            num_warps=backward_num_warps(block_d, n_state, block_l),
        )
    if n_slots != groups:  # deterministic partials: fixed-order sum over the channel blocks of each group
        dB = dB.view(batch, groups, blocks_per_group, n_state, length).sum(2)
        dC = dC.view(batch, groups, blocks_per_group, n_state, length).sum(2)
    return (du, ddelta, dA.sum(0), dB.to(B.dtype), dC.to(C.dtype), dD.sum(0), dz, dbias.sum(0), dh0)
