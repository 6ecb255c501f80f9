"""Numba kernels of the CPU selective scan (``cpu.py`` makes them custom ops): forward with chunk-boundary
checkpoints, backward by recomputation.

Work is split into items of ``LANES`` consecutive channels of one sequence (and one B/C group). Inside an item the
innermost loops run over those channels, so every per-state operation (``exp`` included) is one SIMD instruction
across channels and the forward needs no horizontal sum. Time is walked in chunks of ``checkpoint_every`` steps; per
chunk, u/delta/dout are transposed into small time-major tiles (lanes innermost), and B/C are read from time-major
copies made once per call. The gradients of B and C, shared by all channel blocks, are written per work item and
summed afterwards in block order; those of A, D and delta_bias are summed over the batch in order: the results do not
depend on the thread count.

``prange`` runs over *slots*, each taking every ``n_slots``-th item. A slot's scratch buffers are rows of arrays
allocated before the ``prange``, so numba passes them to the parallel body as distinct arguments that LLVM may
assume do not alias (buffers allocated inside the body would need runtime alias checks, which defeat the
vectoriser). For the same reason the bodies never take array views: numba's alias analysis would then drop
the no-alias guarantee for all arguments.

The kernels choose no threading layer: ``cpu.py`` does, when the backend is first used.

Layouts: the tensors with an L axis (u, delta, z, out and their gradients) come either as (batch, d_inner, L) or,
with ``channels_last``, as (batch, L, d_inner) — the layout of the model's linear layers, which then need no
transposes around the scan; in the kernels only the tile loads and stores differ. All arrays are C-contiguous
float32; optional inputs arrive as zeros (``D``, ``delta_bias``, initial state,
``dlast``) or as an empty array plus a flag (``z``), so each kernel compiles for exactly one signature.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_SUM_SPAN = 256  # steps of dB / dC one task of the block sums covers
LANES = 16  # channels per work item: two AVX2 vectors (32 measured slower)

_LOG2E = np.float32(1.4426950408889634)
_LN2 = np.float32(0.6931471805599453)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)


def _jit(parallel=False, **options):
    """``njit`` with fastmath, numpy's error model (no zero-division checks, so divisions vectorise) and an
    on-disk cache; where numba finds no writable cache directory, it compiles in each process instead.

    ``parallel=True`` turns on ``prange`` only: numpy calls (the scratch allocations) stay serial instead of each
    becoming a separately compiled parallel loop, and consecutive pranges, which depend on each other, are never
    fused.
    """
    def decorate(fn):
        def build(cache):
            prange_only = dict.fromkeys(("comprehension", "reduction", "inplace_binop", "setitem", "numpy", "stencil",
                                         "fusion"), False) if parallel else False
            return njit(cache=cache, parallel=prange_only, fastmath=True, error_model="numpy", **options)(fn)

        try:
            return build(cache=True)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return build(cache=False)

    return decorate


@intrinsic
def _rint(typingctx, x):
    """Round a float32 to the nearest integer (llvm.rint: one vroundps)."""
    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.rint", [ir.FloatType()])
        return builder.call(fn, args)

    return types.float32(types.float32), codegen


@intrinsic
def _pow2(typingctx, k):
    """2**k for an integral float32 k in [-126, 127], built from the exponent bits."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.shl(builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@_jit(inline="always")
def exp2(x):
    """2**x in float32 within 2e-7 relative error, branch-free so that LLVM vectorises it (libm's expf does
    not vectorise without SVML). Arguments are clamped to [-126, 126]: results below 2**-126 ~ 1.2e-38 come out
    as that, results above 2**126 as 2**126 instead of inf."""
    x = min(max(x, np.float32(-126.0)), np.float32(126.0))
    k = _rint(x)
    r = x - k
    p = np.float32(0.0013308821944519877)  # near-minimax fit of (2**r - 1) / r on [-1/2, 1/2]
    p = p * r + np.float32(0.00967151764780283)
    p = p * r + np.float32(0.05550582334399223)
    p = p * r + np.float32(0.24022242426872253)
    p = p * r + np.float32(0.6931470632553101)
    p = p * r + _ONE
    return p * _pow2(k)


@_jit(inline="always")
def sigmoid(x):
    return _ONE / (_ONE + exp2(-x * _LOG2E))


@_jit(inline="always")
def softplus(x):
    """log(1 + e**x) = max(x, 0) + log1p(e**-|x|), within 3e-7 relative error; equals x above 20 like torch's.

    log1p(w) for w in [0, 1] is 2 atanh(s) with s = w / (2 + w) in [0, 1/3]: 2s + s**3 P(s**2), P fitted.
    """
    w = exp2(-abs(x) * _LOG2E)
    s = w / (_TWO + w)
    s2 = s * s
    p = np.float32(0.28064003586769104)
    p = p * s2 + np.float32(0.2799034118652344)
    p = p * s2 + np.float32(0.4002230167388916)
    p = p * s2 + np.float32(0.6666640043258667)
    return max(x, np.float32(0.0)) + _TWO * s + s * s2 * p


@_jit(inline="always")
def _nonneg(index):
    """An index known to be >= 0, as uint64, so numba skips its negative-index wraparound (which would stop
    LLVM from vectorising loops over time)."""
    return np.uint64(index)


@_jit(inline="always")
def _work_shape(u, A, B, ckpt, max_slots):
    """The scan's sizes: (batch, d_inner, L, N, groups G, channels per group, LANES-wide blocks per group, chunks,
    work items (one per sequence, group and block), scratch slots)."""
    batch, d_inner, length = u.shape[0], A.shape[0], B.shape[3]
    n_groups = B.shape[1]
    d_group = d_inner // n_groups
    blocks = (d_group + LANES - 1) // LANES
    n_items = batch * n_groups * blocks
    return (batch, d_inner, length, A.shape[1], n_groups, d_group, blocks, ckpt.shape[2], n_items,
            max(1, min(n_items, max_slots)))


@_jit(inline="always")
def _item_coords(item, n_groups, blocks, d_group):
    """Work item -> (batch index, group, block within the group, first channel, channel count)."""
    b = item // (n_groups * blocks)
    g = (item // blocks) % n_groups
    blk = item % blocks
    d0 = g * d_group + blk * LANES
    return b, g, blk, d0, min(LANES, (g + 1) * d_group - d0)


@_jit()
def _load_tile(src, b, d0, w, t0, steps, tile, s, channels_last):
    """tile[s, k, j] = src[b, d0 + j, t0 + k] for the item's w channels (time-major tile, lanes innermost);
    src[b, t0 + k, d0 + j] when ``channels_last`` (src (batch, L, d_inner): a contiguous copy per step).

    Loop order here and in the other transposes: the innermost loop writes contiguously (strided stores measured
    5-6x slower than strided loads)."""
    if channels_last:
        for k in range(steps):
            for j in range(w):
                tile[s, k, j] = src[b, _nonneg(t0 + k), _nonneg(d0 + j)]
    else:
        for k in range(steps):
            for j in range(w):
                tile[s, k, j] = src[b, _nonneg(d0 + j), _nonneg(t0 + k)]


@_jit()
def _store_tile(tile, s, b, d0, w, t0, steps, dst, channels_last):
    """dst[b, d0 + j, t0 + k] (or dst[b, t0 + k, d0 + j] when ``channels_last``) = tile[s, k, j]: the inverse of
    :func:`_load_tile`."""
    if channels_last:
        for k in range(steps):
            for j in range(w):
                dst[b, _nonneg(t0 + k), _nonneg(d0 + j)] = tile[s, k, j]
    else:
        for j in range(w):
            for k in range(steps):
                dst[b, d0 + j, _nonneg(t0 + k)] = tile[s, k, j]


@_jit()
def _transpose_tile(tile, s, steps, tile_t):
    """tile_t[s, j, k] = tile[s, k, j]: time-major to channel-major, for contiguous access along L."""
    for j in range(LANES):
        for k in range(steps):
            tile_t[s, j, k] = tile[s, k, j]


@_jit()
def _zero_lanes(tile, s, w):
    """Zero lanes w.. of tile[s] so channels past the item's end stay inert (zero input, zero state)."""
    for k in range(tile.shape[1]):
        for j in range(w, LANES):
            tile[s, k, j] = 0.0


@_jit()
def _load_lanes(src, b, d0, w, rows, s):
    """rows[s, n, j] = src[b, d0 + j, n] (lanes past w zeroed): a (batch, d_inner, N) slice, transposed."""
    for n in range(rows.shape[1]):
        for j in range(LANES):
            rows[s, n, j] = src[b, d0 + j, n] if j < w else 0.0


@_jit()
def _discretise(x_k, dt_k, u_k, dtu_k, bias, s, steps, delta_softplus):
    """In the tiles: x = delta + bias (in place), dt = softplus(x) or x, dtu = dt * u."""
    for k in range(steps):
        for j in range(LANES):
            x = x_k[s, k, j] + bias[s, j]
            x_k[s, k, j] = x
            dt = softplus(x) if delta_softplus else x
            dt_k[s, k, j] = dt
            dtu_k[s, k, j] = dt * u_k[s, k, j]


@_jit()
def _time_major(bc, b, g, out):
    """out[b, g, t, n] = bc[b, g, n, t]: B or C with the N values of a step in one cache line."""
    for t in range(bc.shape[3]):
        for n in range(bc.shape[2]):
            out[b, g, t, n] = bc[b, g, n, t]


@_jit()
def _store_partial(part_k, s, steps, part, b, g, blk, t0):
    """part[b, g, blk, t0 + k] = part_k[s, k]: one chunk of a work item's dB or dC partial (time-major on both
    sides: one contiguous copy)."""
    for k in range(steps):
        for n in range(part_k.shape[2]):
            part[b, g, blk, _nonneg(t0 + k), n] = part_k[s, k, n]


@_jit()
def _sum_blocks(dB_part, dC_part, b, g, t0, t1, dB, dC):
    """dB[b, g, n, t] = sum over blocks of dB_part[b, g, :, t, n] for t in [t0, t1), in block order (likewise
    dC): the sums run over the N values of a step at once (contiguous), then go to dB's (N, L) layout."""
    blocks, n_state = dB_part.shape[2], dB_part.shape[4]
    acc_b = np.empty(n_state, np.float32)
    acc_c = np.empty(n_state, np.float32)
    for t in range(t0, t1):
        for n in range(n_state):
            acc_b[n] = dB_part[b, g, 0, t, n]
            acc_c[n] = dC_part[b, g, 0, t, n]
        for blk in range(1, blocks):
            for n in range(n_state):
                acc_b[n] += dB_part[b, g, blk, t, n]
                acc_c[n] += dC_part[b, g, blk, t, n]
        for n in range(n_state):
            dB[b, g, n, t] = acc_b[n]
            dC[b, g, n, t] = acc_c[n]


@_jit()
def _sum_batch(dA_part, dD_part, dbias_part, dA, dD, dbias):
    """dA = dA_part.sum(0), dD = dD_part.sum(0), dbias = dbias_part.sum(0), in batch order."""
    dA[:] = dA_part[0]
    dD[:] = dD_part[0]
    dbias[:] = dbias_part[0]
    for b in range(1, dA_part.shape[0]):
        dA += dA_part[b]
        dD += dD_part[b]
        dbias += dbias_part[b]


@_jit(parallel=True)
def scan_fwd(u, delta, z, has_z, A, B, C, D, delta_bias, delta_softplus, h0, checkpoint_every, max_slots, out, ckpt,
             last, channels_last):
    """Forward scan.

    u, delta, out: (batch, d_inner, L), or (batch, L, d_inner) when ``channels_last`` (likewise z and, in the
    backward, dout, du, ddelta, dz); z: like u when ``has_z``, else any empty array;
    A: (d_inner, N); B, C: (batch, G, N, L); D, delta_bias: (d_inner,);
    h0, last: (batch, d_inner, N); ckpt: (batch, d_inner, n_chunks, N) receives the state before each chunk.
    """
    batch, d_inner, length, n_state, n_groups, d_group, blocks, n_chunks, n_items, n_slots = _work_shape(
        u, A, B, ckpt, max_slots)
    tile = min(checkpoint_every, length)  # the most steps a chunk has: scratch for no more
    a2 = np.zeros((n_slots, n_state, LANES), np.float32)  # A * log2(e), lanes = channels
    h = np.zeros((n_slots, n_state, LANES), np.float32)
    bias = np.zeros((n_slots, LANES), np.float32)
    x_k = np.zeros((n_slots, tile, LANES), np.float32)
    u_k = np.zeros((n_slots, tile, LANES), np.float32)
    dt_k = np.zeros((n_slots, tile, LANES), np.float32)
    dtu_k = np.zeros((n_slots, tile, LANES), np.float32)
    y_k = np.zeros((n_slots, tile, LANES), np.float32)
    y_t = np.zeros((n_slots, LANES, tile), np.float32)
    Bt = np.empty((batch, n_groups, length, n_state), np.float32)
    Ct = np.empty((batch, n_groups, length, n_state), np.float32)
    for r in prange(batch * n_groups):
        _time_major(B, r // n_groups, r % n_groups, Bt)
        _time_major(C, r // n_groups, r % n_groups, Ct)
    for s in prange(n_slots):
        for item in range(s, n_items, n_slots):
            b, g, _, d0, w = _item_coords(item, n_groups, blocks, d_group)
            if w < LANES:
                _zero_lanes(x_k, s, w)
                _zero_lanes(u_k, s, w)
            for j in range(LANES):
                bias[s, j] = delta_bias[d0 + j] if j < w else 0.0
                for n in range(n_state):
                    a2[s, n, j] = A[d0 + j, n] * _LOG2E if j < w else 0.0
            _load_lanes(h0, b, d0, w, h, s)
            for c in range(n_chunks):
                t0 = c * checkpoint_every
                steps = min(checkpoint_every, length - t0)
                for j in range(w):
                    for n in range(n_state):
                        ckpt[b, d0 + j, c, n] = h[s, n, j]
                _load_tile(delta, b, d0, w, t0, steps, x_k, s, channels_last)
                _load_tile(u, b, d0, w, t0, steps, u_k, s, channels_last)
                _discretise(x_k, dt_k, u_k, dtu_k, bias, s, steps, delta_softplus)
                for k in range(steps):
                    for j in range(LANES):
                        y_k[s, k, j] = 0.0
                    for n in range(n_state):
                        bn = Bt[b, g, t0 + k, n]
                        cn = Ct[b, g, t0 + k, n]
                        for j in range(LANES):
                            hn = exp2(dt_k[s, k, j] * a2[s, n, j]) * h[s, n, j] + dtu_k[s, k, j] * bn
                            h[s, n, j] = hn
                            y_k[s, k, j] += hn * cn
                if channels_last:  # gate in the time-major tiles (x_k is free now: it takes z), store by step
                    if has_z:
                        _load_tile(z, b, d0, w, t0, steps, x_k, s, channels_last)
                    for k in range(steps):
                        for j in range(w):
                            yy = y_k[s, k, j] + D[d0 + j] * u_k[s, k, j]
                            if has_z:
                                zz = x_k[s, k, j]
                                yy = yy * zz * sigmoid(zz)
                            y_k[s, k, j] = yy
                    _store_tile(y_k, s, b, d0, w, t0, steps, out, channels_last)
                    continue
                _transpose_tile(y_k, s, steps, y_t)
                for j in range(w):
                    dj = D[d0 + j]
                    if has_z:
                        for k in range(steps):
                            t = _nonneg(t0 + k)
                            zz = z[b, d0 + j, t]
                            out[b, d0 + j, t] = (y_t[s, j, k] + dj * u[b, d0 + j, t]) * zz * sigmoid(zz)
                    else:
                        for k in range(steps):
                            t = _nonneg(t0 + k)
                            out[b, d0 + j, t] = y_t[s, j, k] + dj * u[b, d0 + j, t]
            for j in range(w):
                for n in range(n_state):
                    last[b, d0 + j, n] = h[s, n, j]


@_jit(parallel=True)
def scan_bwd(u, delta, z, has_z, A, B, C, D, delta_bias, delta_softplus, ckpt, dout, dlast, checkpoint_every,
             max_slots, du, ddelta, dz, dA, dD, dbias, dB, dC, dh0, channels_last):
    """Backward scan: walks the chunks in reverse, recomputing each chunk's states from its checkpoint.

    Inputs as in :func:`scan_fwd`, plus dout: (batch, d_inner, L) and dlast: (batch, d_inner, N) (zeros when
    last_state got no gradient). Outputs, fp32: du, ddelta: (batch, d_inner, L); dz like z; dA: (d_inner, N);
    dD, dbias: (d_inner,); dB, dC: (batch, G, N, L); dh0: (batch, d_inner, N). Gradients shared by several work
    items (B and C by the channel blocks, A, D and delta_bias by the sequences) are written as per-item partials
    and summed afterwards in a fixed order: bitwise reproducible, whatever the thread count.
    """
    batch, d_inner, length, n_state, n_groups, d_group, blocks, n_chunks, n_items, n_slots = _work_shape(
        u, A, B, ckpt, max_slots)
    tile = min(checkpoint_every, length)  # the most steps a chunk has: scratch for no more
    a2 = np.zeros((n_slots, n_state, LANES), np.float32)
    adj = np.zeros((n_slots, n_state, LANES), np.float32)  # adjoint state, d loss / d h_t
    dA_acc = np.zeros((n_slots, n_state, LANES), np.float32)
    # hs[k + 1]: state after step k of the chunk; hs and decay are written (every lane) before they are read
    hs = np.empty((n_slots, tile + 1, n_state, LANES), np.float32)
    decay = np.empty((n_slots, tile, n_state, LANES), np.float32)
    u_k = np.zeros((n_slots, tile, LANES), np.float32)
    x_k = np.zeros((n_slots, tile, LANES), np.float32)
    dt_k = np.zeros((n_slots, tile, LANES), np.float32)
    dtu_k = np.zeros((n_slots, tile, LANES), np.float32)
    y_k = np.zeros((n_slots, tile, LANES), np.float32)
    dy_k = np.zeros((n_slots, tile, LANES), np.float32)
    du_k = np.zeros((n_slots, tile, LANES), np.float32)
    ddt_k = np.zeros((n_slots, tile, LANES), np.float32)
    y_t = np.zeros((n_slots, LANES, tile), np.float32)
    dy_t = np.zeros((n_slots, LANES, tile), np.float32)
    d_blk = np.zeros((n_slots, LANES), np.float32)
    bias = np.zeros((n_slots, LANES), np.float32)
    dD_acc = np.zeros((n_slots, LANES), np.float32)
    dbias_acc = np.zeros((n_slots, LANES), np.float32)
    g_b = np.zeros((n_slots, LANES), np.float32)
    s_a = np.zeros((n_slots, LANES), np.float32)
    dB_k = np.zeros((n_slots, tile, n_state), np.float32)
    dC_k = np.zeros((n_slots, tile, n_state), np.float32)
    Bt = np.empty((batch, n_groups, length, n_state), np.float32)
    Ct = np.empty((batch, n_groups, length, n_state), np.float32)
    for r in prange(batch * n_groups):
        _time_major(B, r // n_groups, r % n_groups, Bt)
        _time_major(C, r // n_groups, r % n_groups, Ct)
    dB_part = np.empty((batch, n_groups, blocks, length, n_state), np.float32)  # one slice per work item
    dC_part = np.empty((batch, n_groups, blocks, length, n_state), np.float32)
    dA_part = np.empty((batch, d_inner, n_state), np.float32)  # one slice per sequence
    dD_part = np.empty((batch, d_inner), np.float32)
    dbias_part = np.empty((batch, d_inner), np.float32)
    for s in prange(n_slots):
        for item in range(s, n_items, n_slots):
            b, g, blk, d0, w = _item_coords(item, n_groups, blocks, d_group)
            if w < LANES:
                _zero_lanes(u_k, s, w)
                _zero_lanes(x_k, s, w)
                _zero_lanes(dy_k, s, w)
            for j in range(LANES):
                d_blk[s, j] = D[d0 + j] if j < w else 0.0
                bias[s, j] = delta_bias[d0 + j] if j < w else 0.0
                dD_acc[s, j] = 0.0
                dbias_acc[s, j] = 0.0
                for n in range(n_state):
                    a2[s, n, j] = A[d0 + j, n] * _LOG2E if j < w else 0.0
                    dA_acc[s, n, j] = 0.0
            _load_lanes(dlast, b, d0, w, adj, s)
            for c in range(n_chunks - 1, -1, -1):
                t0 = c * checkpoint_every
                steps = min(checkpoint_every, length - t0)
                for n in range(n_state):
                    for j in range(LANES):
                        hs[s, 0, n, j] = ckpt[b, d0 + j, c, n] if j < w else 0.0
                _load_tile(u, b, d0, w, t0, steps, u_k, s, channels_last)
                _load_tile(delta, b, d0, w, t0, steps, x_k, s, channels_last)
                _discretise(x_k, dt_k, u_k, dtu_k, bias, s, steps, delta_softplus)
                # recompute the chunk's states, and the pre-gate output y + D u for dz
                for k in range(steps):
                    for j in range(LANES):
                        y_k[s, k, j] = d_blk[s, j] * u_k[s, k, j]
                    for n in range(n_state):
                        bn = Bt[b, g, t0 + k, n]
                        cn = Ct[b, g, t0 + k, n]
                        for j in range(LANES):
                            a = exp2(dt_k[s, k, j] * a2[s, n, j])
                            hn = a * hs[s, k, n, j] + dtu_k[s, k, j] * bn
                            decay[s, k, n, j] = a
                            hs[s, k + 1, n, j] = hn
                            y_k[s, k, j] += hn * cn
                if has_z and channels_last:  # as below, in time-major tiles: du_k takes z, ddt_k dout (free here)
                    _load_tile(z, b, d0, w, t0, steps, du_k, s, channels_last)
                    _load_tile(dout, b, d0, w, t0, steps, ddt_k, s, channels_last)
                    for k in range(steps):
                        for j in range(w):
                            zz = du_k[s, k, j]
                            g_out = ddt_k[s, k, j]
                            sig = sigmoid(zz)
                            dy_k[s, k, j] = g_out * zz * sig
                            du_k[s, k, j] = g_out * y_k[s, k, j] * sig * (_ONE + zz * (_ONE - sig))
                    _store_tile(du_k, s, b, d0, w, t0, steps, dz, channels_last)
                elif has_z:  # out = y * silu(z): dy = dout * silu(z), dz = dout * y * silu'(z)
                    _transpose_tile(y_k, s, steps, y_t)
                    for j in range(w):
                        for k in range(steps):
                            t = _nonneg(t0 + k)
                            zz = z[b, d0 + j, t]
                            g_out = dout[b, d0 + j, t]
                            sig = sigmoid(zz)
                            dy_t[s, j, k] = g_out * zz * sig
                            dz[b, d0 + j, t] = g_out * y_t[s, j, k] * sig * (_ONE + zz * (_ONE - sig))
                    for k in range(steps):
                        for j in range(w):
                            dy_k[s, k, j] = dy_t[s, j, k]
                else:
                    _load_tile(dout, b, d0, w, t0, steps, dy_k, s, channels_last)
                # adjoint recurrence, backwards in time: adj = d loss / d h_t, then d loss / d h_{t-1}
                for k in range(steps - 1, -1, -1):
                    t = t0 + k
                    for j in range(LANES):
                        g_b[s, j] = 0.0
                        s_a[s, j] = 0.0
                    for n in range(n_state):
                        bn = Bt[b, g, t, n]
                        cn = Ct[b, g, t, n]
                        sum_c = np.float32(0.0)
                        sum_b = np.float32(0.0)
                        for j in range(LANES):
                            gn = adj[s, n, j] + dy_k[s, k, j] * cn
                            sum_c += dy_k[s, k, j] * hs[s, k + 1, n, j]
                            sum_b += gn * dtu_k[s, k, j]
                            g_b[s, j] += gn * bn
                            da = gn * decay[s, k, n, j] * hs[s, k, n, j]
                            s_a[s, j] += da * a2[s, n, j]
                            dA_acc[s, n, j] += da * dt_k[s, k, j]
                            adj[s, n, j] = gn * decay[s, k, n, j]
                        dC_k[s, k, n] = sum_c
                        dB_k[s, k, n] = sum_b
                    for j in range(LANES):
                        ddt = g_b[s, j] * u_k[s, k, j] + s_a[s, j] * _LN2
                        if delta_softplus:
                            ddt *= sigmoid(x_k[s, k, j])
                        ddt_k[s, k, j] = ddt
                        dbias_acc[s, j] += ddt
                        du_k[s, k, j] = g_b[s, j] * dt_k[s, k, j] + dy_k[s, k, j] * d_blk[s, j]
                        dD_acc[s, j] += dy_k[s, k, j] * u_k[s, k, j]
                _store_partial(dB_k, s, steps, dB_part, b, g, blk, t0)
                _store_partial(dC_k, s, steps, dC_part, b, g, blk, t0)
                _store_tile(du_k, s, b, d0, w, t0, steps, du, channels_last)
                _store_tile(ddt_k, s, b, d0, w, t0, steps, ddelta, channels_last)
            for j in range(w):
                dD_part[b, d0 + j] = dD_acc[s, j]
                dbias_part[b, d0 + j] = dbias_acc[s, j]
                for n in range(n_state):
                    dA_part[b, d0 + j, n] = dA_acc[s, n, j]
                    dh0[b, d0 + j, n] = adj[s, n, j]
    spans = (length + _SUM_SPAN - 1) // _SUM_SPAN
    for row in prange(batch * n_groups * spans):
        b, g, span = row // (n_groups * spans), row // spans % n_groups, row % spans
        _sum_blocks(dB_part, dC_part, b, g, span * _SUM_SPAN, min(length, (span + 1) * _SUM_SPAN), dB, dC)
    _sum_batch(dA_part, dD_part, dbias_part, dA, dD, dbias)

