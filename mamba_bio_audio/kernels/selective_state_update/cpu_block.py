"""Numba kernels of the fused CPU decode step: one call runs a whole residual block for one token
(add → norm → in_proj → conv update → x_proj / dt_proj → softplus → state update → gate → out_proj, and the
gated MLP with its add → norm when there is one); ``embed`` looks the tokens up (and refuses ids outside the
table), ``final_step`` runs the last add → norm and the head; ``add_norm`` and ``linear`` also serve SaShiMi's
pools.

They exist because at batch 1 a Mamba step is a few hundred thousand multiply-adds per layer, while the same step
through PyTorch is about twenty small ops, each with microseconds of dispatch: the time went to dispatch, not to
arithmetic. ``mamba_bio_audio.models.fast_decode`` validates the shapes once, when a decoding state is allocated,
and calls these kernels directly.

``exp``, ``softplus`` and ``sigmoid`` are the scan's vectorising polynomials (``selective_scan/cpu_numba.py``,
within 3e-7 relative error). All arrays are C-contiguous float32 numpy arrays (views of the model's parameters
and of the decoding state, so the state is updated in place); an absent bias arrives as an empty array plus a
``has_...`` flag, so each kernel compiles for one signature. Shapes: batch B, width D, d_inner E, conv width W,
state size N, dt rank R, MLP hidden H. Sums run in fp32 in a fixed order (not the order of PyTorch's GEMMs:
results agree with the generic step to fp32 rounding, not bit for bit).
"""
from __future__ import annotations

import numpy as np
from numba import njit, typeof

from mamba_bio_audio.kernels.selective_scan.cpu_numba import exp2, sigmoid, softplus

__all__ = ["add_norm", "block_step", "compiled_for", "embed", "final_step", "linear"]

_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_LOG2E = np.float32(1.4426950408889634)


def _jit(fn):
    """``njit`` with fastmath (the reductions vectorise), numpy's error model and an on-disk cache; where numba
    finds no writable cache directory it compiles in each process instead."""
    try:
        return njit(cache=True, fastmath=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(cache=False, fastmath=True, error_model="numpy")(fn)


def compiled_for(kernel, *args):
    """``kernel`` (one of this module's) compiled for the numba types of ``args``: a callable that takes arguments
    of exactly those types and skips the dispatcher's matching of types to compiled versions (1.2 µs of a
    45-argument call, measured warm). It checks nothing:
    an argument of another type (dtype, number of dimensions, layout) is read as if it had the compiled one, so it is
    only for arguments built once, by the caller, with fixed types."""
    return kernel.compile(tuple(typeof(a) for a in args))


@_jit
def linear(x, weight, bias, has_bias, out):
    """out (B, M) = x (B, K) @ weight (M, K).T (+ bias (M,)).

    Blocks of 4 weight rows by 4 batch rows: 16 running sums over K, each loaded value used 4 times, which LLVM
    vectorises over K (one thread, AVX-512 machine: as fast as torch's MKL GEMM from batch 16 to 64 at these
    sizes, 2x faster at batch 4, and no thread pool to wake); the batch rows left over (all of them below batch 4)
    and the weight rows left over are plain dot products."""
    batch, width = x.shape
    m = weight.shape[0]
    m4, b4 = m - m % 4, batch - batch % 4
    for i in range(0, m4, 4):
        w0, w1, w2, w3 = weight[i], weight[i + 1], weight[i + 2], weight[i + 3]
        c0 = bias[i] if has_bias else _ZERO
        c1 = bias[i + 1] if has_bias else _ZERO
        c2 = bias[i + 2] if has_bias else _ZERO
        c3 = bias[i + 3] if has_bias else _ZERO
        for r in range(0, b4, 4):
            x0, x1, x2, x3 = x[r], x[r + 1], x[r + 2], x[r + 3]
            a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = _ZERO
            a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = _ZERO
            for k in range(width):
                p0, p1, p2, p3 = w0[k], w1[k], w2[k], w3[k]
                q0, q1, q2, q3 = x0[k], x1[k], x2[k], x3[k]
                a00 += p0 * q0
                a01 += p0 * q1
                a02 += p0 * q2
                a03 += p0 * q3
                a10 += p1 * q0
                a11 += p1 * q1
                a12 += p1 * q2
                a13 += p1 * q3
                a20 += p2 * q0
                a21 += p2 * q1
                a22 += p2 * q2
                a23 += p2 * q3
                a30 += p3 * q0
                a31 += p3 * q1
                a32 += p3 * q2
                a33 += p3 * q3
            out[r, i], out[r + 1, i], out[r + 2, i], out[r + 3, i] = a00 + c0, a01 + c0, a02 + c0, a03 + c0
            out[r, i + 1], out[r + 1, i + 1], out[r + 2, i + 1], out[r + 3, i + 1] = \
                a10 + c1, a11 + c1, a12 + c1, a13 + c1
            out[r, i + 2], out[r + 1, i + 2], out[r + 2, i + 2], out[r + 3, i + 2] = \
                a20 + c2, a21 + c2, a22 + c2, a23 + c2
            out[r, i + 3], out[r + 1, i + 3], out[r + 2, i + 3], out[r + 3, i + 3] = \
                a30 + c3, a31 + c3, a32 + c3, a33 + c3
    for r in range(b4, batch):  # batch rows left over: dot products over contiguous rows (at batch 1, in_proj and
        xr, o = x[r], out[r]  # out_proj timed alone streaming from L3: 10 % faster than indexing the 2-D arrays)
        for i in range(m):
            w = weight[i]
            acc = bias[i] if has_bias else _ZERO
            for k in range(width):
                acc += w[k] * xr[k]
            o[i] = acc
    for i in range(m4, m):  # weight rows left over, for the blocked batch rows
        w = weight[i]
        for r in range(b4):
            xr = x[r]
            acc = bias[i] if has_bias else _ZERO
            for k in range(width):
                acc += w[k] * xr[k]
            out[r, i] = acc


@_jit
def _norm(x, weight, bias, has_bias, eps, rms, out):
    """out (B, D) = LayerNorm or RMSNorm of x (B, D) over D (biased variance, as torch), times weight (+ bias)."""
    batch, width = x.shape
    for r in range(batch):
        mean = _ZERO
        if not rms:
            for k in range(width):
                mean += x[r, k]
            mean /= width
        var = _ZERO
        for k in range(width):
            d = x[r, k] - mean
            var += d * d
        scale = _ONE / np.sqrt(var / width + eps)
        for k in range(width):
            v = (x[r, k] - mean) * scale * weight[k]
            out[r, k] = v + bias[k] if has_bias else v


@_jit
def embed(table, ids, out):
    """out (B, D) ← rows ``ids`` (B,) int64 of table (V, D); False, with ``out`` untouched, when an id is outside
    [0, V)."""
    rows = table.shape[0]
    for r in range(ids.shape[0]):
        if ids[r] < 0 or ids[r] >= rows:
            return False
    for r in range(ids.shape[0]):
        out[r] = table[ids[r]]
    return True


@_jit
def final_step(hidden, resid, first, norm_w, norm_b, has_norm_b, eps, rms, normed, head_w, head_b, has_head_b,
               logits):
    """The LM's last add → norm and its head: resid ← resid + hidden (``first``: hidden), normed ← norm(resid),
    logits (B, V) ← head(normed)."""
    add_norm(hidden, resid, first, norm_w, norm_b, has_norm_b, eps, rms, normed)
    linear(normed, head_w, head_b, has_head_b, logits)


@_jit
def _silu(v):
    return v * sigmoid(v)


@_jit
def add_norm(hidden, resid, first, norm_w, norm_b, has_norm_b, eps, rms, normed):
    """resid ← hidden (``first``: the first block has no residual yet) or resid + hidden; normed ← norm(resid).
    hidden, resid, normed (B, D)."""
    batch, width = hidden.shape
    for r in range(batch):
        for k in range(width):
            resid[r, k] = hidden[r, k] if first else resid[r, k] + hidden[r, k]
    _norm(resid, norm_w, norm_b, has_norm_b, eps, rms, normed)


@_jit
def _conv4_update(x, conv_w, conv_b, has_conv_b, window, out):
    """One row of the conv update at width 4: window (E, 4) ← shifted, x[:E] appended; out (E,) = Σ window ·
    conv_w (E, 4) (+ conv_b), summed in the generic loop's order."""
    for c in range(conv_w.shape[0]):
        w = conv_w[c]
        v1, v2, v3, v = window[c, 1], window[c, 2], window[c, 3], x[c]
        window[c, 0], window[c, 1], window[c, 2], window[c, 3] = v1, v2, v3, v
        acc = conv_b[c] if has_conv_b else _ZERO
        out[c] = acc + v1 * w[0] + v2 * w[1] + v3 * w[2] + v * w[3]


def _state_update_rows(literal_states: int):
    """The state update of one batch row as a kernel: state (E, N) ← state · exp(dt · a) + dt · x · b_row; dts (E,)
    holds dt on entry and y = Σ_n state · c_row + d_skip · x on return. x (E,), a (E, N), b_row, c_row (N,).

    ``literal_states`` > 0 compiles the kernel for that N only, its loop over N of literal length: LLVM then runs it
    as whole AVX-512 vectors with no remainder loop around them (at N 16, 16 rows of d_inner 128, timed alone with
    the calls: 23.9-24.6 against 26.6-27.5 µs for the loop of N read from ``a``); 0 reads N from ``a``."""
    @_jit
    def rows(state, a, dts, x, b_row, c_row, d_skip):
        n_state = literal_states if literal_states else a.shape[1]
        for c in range(state.shape[0]):
            dt, xv = dts[c], x[c]
            dt2, dtx = dt * _LOG2E, dt * xv
            row, a_c = state[c], a[c]
            acc = _ZERO
            for n in range(n_state):
                s = row[n] * exp2(dt2 * a_c[n]) + b_row[n] * dtx
                row[n] = s
                acc += s * c_row[n]
            dts[c] = acc + d_skip[c] * xv
    return rows


_ssm_row = _state_update_rows(0)
_ssm_row16 = _state_update_rows(16)  # every preset's d_state


@_jit
def mixer_core(xz, conv_w, conv_b, has_conv_b, conv_state, xp_w, dt_w, dt_b, a, d_skip, ssm_state,
               xc, xdbl, y, dts, b_row, c_row):
    """The Mamba mixer's step between its two projections: xz (B, 2E) = in_proj(h) → y (B, E), out_proj's input;
    conv_state (B, E, W) and ssm_state (B, E, N) in place. Scratch xc (B, E), xdbl (B, R + 2N), dts (E,), b_row,
    c_row (N,): each pass over the channels is its own loop, and B and C are copied out of x_proj's row, so that
    every inner loop is a plain contiguous one that LLVM vectorises (4x faster than one loop with computed
    indices)."""
    batch = xz.shape[0]
    d_inner, width = conv_w.shape
    n_state = a.shape[1]
    rank = dt_w.shape[1]
    for r in range(batch):
        if width == 4:  # every model's conv: straight-line code LLVM vectorises over the channels (1.7x faster)
            _conv4_update(xz[r], conv_w, conv_b, has_conv_b, conv_state[r], xc[r])
        else:
            for c in range(d_inner):
                acc = conv_b[c] if has_conv_b else _ZERO
                window, weight = conv_state[r, c], conv_w[c]
                for k in range(width - 1):
                    v = window[k + 1]
                    window[k] = v
                    acc += v * weight[k]
                v = xz[r, c]
                window[width - 1] = v
                xc[r, c] = acc + v * weight[width - 1]
        for c in range(d_inner):  # its own loop: vectorised over the channels (2.5x faster than inside the above)
            xc[r, c] = _silu(xc[r, c])
    linear(xc, xp_w, xp_w[0], False, xdbl)
    for r in range(batch):
        for n in range(n_state):
            b_row[n] = xdbl[r, rank + n]
            c_row[n] = xdbl[r, rank + n_state + n]
        for c in range(d_inner):
            acc = dt_b[c]
            for k in range(rank):
                acc += dt_w[c, k] * xdbl[r, k]
            dts[c] = acc
        for c in range(d_inner):
            dts[c] = softplus(dts[c])
        if n_state == 16:
            _ssm_row16(ssm_state[r], a, dts, xc[r], b_row, c_row, d_skip)
        else:
            _ssm_row(ssm_state[r], a, dts, xc[r], b_row, c_row, d_skip)
        for c in range(d_inner):
            y[r, c] = dts[c] * _silu(xz[r, d_inner + c])


@_jit
def gate(mlp_h, mlp_a):
    """The gated MLP's middle: mlp_a (B, H) = mlp_h[:, :H] · SiLU(mlp_h[:, H:]), mlp_h = fc1's output (B, 2H)."""
    hid = mlp_a.shape[1]
    for r in range(mlp_a.shape[0]):
        for k in range(hid):
            mlp_a[r, k] = mlp_h[r, k] * _silu(mlp_h[r, hid + k])


@_jit
def block_step(hidden, resid, first, sum_out, norm_w, norm_b, has_norm_b, eps, rms,
               in_w, in_b, has_in_b, conv_w, conv_b, has_conv_b, conv_state, xp_w, dt_w, dt_b, a, d_skip, ssm_state,
               out_w, out_b, has_out_b,
               has_mlp, norm2_w, norm2_b, has_norm2_b, fc1_w, fc1_b, has_fc1_b, fc2_w, fc2_b, has_fc2_b,
               normed, xz, xc, xdbl, y, dts, b_row, c_row, mlp_h, mlp_a):
    """One residual block for one token, in place: resid ← hidden (``first``) or resid + hidden; hidden ←
    mixer(norm(resid)); with the MLP, resid ← hidden + resid and hidden ← mlp(norm2(resid)); with ``sum_out``
    (SaShiMi's y = x + mixer(norm(x))), hidden ← hidden + resid. hidden, resid, normed (B, D); the scratch
    xz (B, 2E), xc (B, E), xdbl (B, R + 2N), y (B, E), dts (E,), b_row, c_row (N,), mlp_h (B, 2H), mlp_a (B, H)."""
    batch, width = hidden.shape
    add_norm(hidden, resid, first, norm_w, norm_b, has_norm_b, eps, rms, normed)
    linear(normed, in_w, in_b, has_in_b, xz)
    mixer_core(xz, conv_w, conv_b, has_conv_b, conv_state, xp_w, dt_w, dt_b, a, d_skip, ssm_state, xc, xdbl, y, dts,
               b_row, c_row)
    linear(y, out_w, out_b, has_out_b, hidden)
    if has_mlp:
        add_norm(hidden, resid, False, norm2_w, norm2_b, has_norm2_b, eps, rms, normed)
        linear(normed, fc1_w, fc1_b, has_fc1_b, mlp_h)
        gate(mlp_h, mlp_a)
        linear(mlp_a, fc2_w, fc2_b, has_fc2_b, hidden)
    if sum_out:
        for r in range(batch):
            for k in range(width):
                hidden[r, k] += resid[r, k]
