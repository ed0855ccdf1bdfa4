"""Triton kernels for the bidirectional d_state=1 selective scan, forward and backward.

Why a custom kernel: the scan is memory-bound (one multiply-add of state per element), so
the win is touching each input once. One launch runs both directions (direction 1 walks
positions backwards, no flipped copies), applies ``softplus(delta + bias)``, the D skip and
the merge ``y = y0 + y1`` in registers, and writes ``y`` once in float32.

Each program owns ``BLOCK_D`` channels of one sample and walks L in chunks of ``BLOCK_L``
positions: a chunk is loaded as one coalesced (channels, positions) tile, scanned with
``tl.associative_scan`` (the recurrence ``h = a h + b`` composes associatively) and the
state is carried to the next chunk. When L fits one chunk (the classification sizes)
both directions share the tile; longer sequences (detection) do direction 0 first, then
direction 1 adds into ``y``. The forward also stores the state entering every chunk so
that the backward can restart each chunk without re-running the sequence.

Backward, per direction and in scan order: ``s_l = dL/dh_l = g_l C_l + a_{l+1} s_{l+1}``
(a scan in the opposite order), then ``a_l h_{l-1} = h_l - b_l`` gives every gradient
without a division. Reductions over channels (dB, dC) and over samples and positions
(dA, dD, dbias) go through float32 atomics.

The kernels are wrapped as the custom ops ``mmmobilemamba::scan_fwd``/``scan_bwd`` with a
fake (meta) implementation and autograd, so ``torch.compile(fullgraph=True)`` and CUDA
graphs trace through them. Importing this module never needs a GPU.
"""
import os
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
    HAS_TRITON = True
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch
    HAS_TRITON = False

INTERPRET = os.environ.get('TRITON_INTERPRET') == '1'
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_BLOCK_L = 256
# Tuning knobs (module globals so that benchmarks/scan_bandwidth.py can sweep them):
# elements of a (channels x positions) register tile and warps per program, forward and
# backward; channels per backward program when L fits one chunk (dB, dC are summed over
# them before the atomic add); fewest programs before the channel block shrinks (long L
# with a small batch would otherwise leave most of the GPU idle).
FWD_TILE, FWD_WARPS = 512, 2
BWD_TILE, BWD_WARPS = 256, 2
BWD_CHANNELS = 16
MIN_PROGRAMS = 1024
# Best (tile, warps) per BLOCK_L where it beats the defaults above, from the sweep on an
# H100 (docs/benchmarks.md): BLOCK_L 64 is S6's stage 2 (L = 49).
FWD_BY_L: Dict[int, Tuple[int, int]] = {64: (256, 1)}
BWD_BY_L: Dict[int, Tuple[int, int]] = {}
# Single-tile forward: the cheaper softplus (``_softplus_fast``); False keeps Kahan's.
FWD_FAST_SOFTPLUS = True
LAST_COMPILED = {}  # 'fwd'/'bwd' -> the last launched kernel (registers, spills for tuning)


def triton_available(u: Tensor) -> bool:
    """True where ``scan_triton`` can run on ``u``: a CUDA tensor (or any tensor under
    ``TRITON_INTERPRET=1``) of float32, bfloat16 or float16, with triton importable."""
    return triton_unavailable(u) is None


def triton_unavailable(u: Tensor) -> Optional[str]:
    """Why ``scan_triton`` cannot run on ``u``, or None (for ``register_backend``)."""
    if not HAS_TRITON:
        return 'the triton package is not installed'
    if not (u.is_cuda or INTERPRET):
        return f'it needs CUDA tensors, got {u.device.type} (TRITON_INTERPRET=1 emulates)'
    if u.dtype not in DTYPES:
        return f'it takes float32, bfloat16 or float16, got {u.dtype}'
    return None


def _block_l(length: int) -> int:
    return min(triton.next_power_of_2(length), MAX_BLOCK_L)


def _blocks(bt: int, d: int, length: int, tile: int) -> Tuple[int, int, int]:
    """(BLOCK_D, BLOCK_L, number of chunks); the chunking depends on L alone, so the forward
    and the backward agree on it."""
    block_l = _block_l(length)
    block_d = min(max(tile // block_l, 1), triton.next_power_of_2(d))
    while block_d > 1 and bt * triton.cdiv(d, block_d) < MIN_PROGRAMS:
        block_d //= 2
    return block_d, block_l, triton.cdiv(length, block_l)


if HAS_TRITON:

    @triton.jit
    def _combine(a1, b1, a2, b2):
        """Compose ``h -> a1 h + b1`` then ``h -> a2 h + b2``."""
        return a1 * a2, b1 * a2 + b2

    @triton.jit
    def _softplus_sigmoid(x):
        """(softplus(x), sigmoid(x)) from one exp: ``log1p(exp(x))`` stays accurate for very
        negative x (Kahan's trick, fast division); x above 20 passes as is, like
        ``F.softplus``."""
        e = tl.exp(tl.minimum(x, 20.0))
        w = 1.0 + e
        lp = tl.where(w == 1.0, e, tl.log(w) * tl.fdiv(e, w - 1.0, ieee_rounding=False))
        return tl.where(x > 20.0, x, lp), tl.fdiv(e, w, ieee_rounding=False)

    @triton.jit
    def _softplus(x):
        return _softplus_sigmoid(x)[0]

    @triton.jit
    def _softplus_fast(x):
        """softplus for the forward when L fits one tile: ``log(1 + e)`` without Kahan's
        correction, and ``e`` itself below 1e-4 (there ``log1p(e) = e (1 - e/2 + ...)``, so
        the relative error stays under 5e-5). Costs one exp and one log, no division."""
        e = tl.exp(tl.minimum(x, 20.0))
        return tl.where(x > 20.0, x, tl.where(e < 1e-4, e, tl.log(1.0 + e)))

    @triton.jit
    def _fwd_dir_single(u, dlt, A, Bv, bias, REVERSE: tl.constexpr, FAST: tl.constexpr):
        """States of one direction over the whole row, entering state 0. Padding needs no
        mask: u is loaded as 0 there, so b = 0 and a zero state stays zero through it."""
        if FAST:
            dt = _softplus_fast(dlt + bias[:, None])
        else:
            dt = _softplus(dlt + bias[:, None])
        a = tl.exp(dt * A[:, None])
        return tl.associative_scan((a, dt * Bv[None, :] * u), 1, _combine, reverse=REVERSE)[1]

    @triton.jit
    def _column(x, idx, col):
        """``x[:, col]`` of a register tile."""
        return tl.sum(tl.where(idx[None, :] == col, x, 0.0), axis=1)

    @triton.jit
    def _fwd_dir(u, dlt, A, Bv, bias, mask, carry, REVERSE: tl.constexpr):
        """States h of one direction over a chunk, given the state entering it."""
        dt = _softplus(dlt + bias[:, None])
        a = tl.where(mask, tl.exp(dt * A[:, None]), 1.0)
        b = tl.where(mask, dt * Bv[None, :] * u, 0.0)
        p, h = tl.associative_scan((a, b), 1, _combine, reverse=REVERSE)
        return h + p * carry[:, None]

    @triton.jit
    def _scan_fwd_kernel(
            u_ptr, dlt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, y_ptr, hs_ptr,
            d, L, n_dblocks, n_chunks,
            su_b, su_d, su_l, sd_b, sd_k, sd_d, sd_l, sB_b, sB_k, sB_l, sC_b, sC_k, sC_l,
            sy_b, sy_d, sy_l,
            BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, SINGLE: tl.constexpr,
            FAST: tl.constexpr):
        pid = tl.program_id(0)
        pid_b = (pid // n_dblocks).to(tl.int64)
        offs_d = (pid % n_dblocks) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < d
        idx = tl.arange(0, BLOCK_L)
        A0 = tl.load(A_ptr + offs_d, mask_d, 0.0).to(tl.float32)
        A1 = tl.load(A_ptr + d + offs_d, mask_d, 0.0).to(tl.float32)
        bias0 = tl.load(bias_ptr + offs_d, mask_d, 0.0).to(tl.float32)
        bias1 = tl.load(bias_ptr + d + offs_d, mask_d, 0.0).to(tl.float32)
        dsum = (tl.load(D_ptr + offs_d, mask_d, 0.0).to(tl.float32)
                + tl.load(D_ptr + d + offs_d, mask_d, 0.0).to(tl.float32))
        u_rows = u_ptr + pid_b * su_b + offs_d[:, None] * su_d
        d0_rows = dlt_ptr + pid_b * sd_b + offs_d[:, None] * sd_d
        d1_rows = d0_rows + sd_k
        y_rows = y_ptr + pid_b * sy_b + offs_d[:, None] * sy_d
        B0_ptr = B_ptr + pid_b * sB_b
        C0_ptr = C_ptr + pid_b * sC_b
        hs0 = hs_ptr + (pid_b * 2 * d + offs_d) * n_chunks     # hs: (Bt, 2, d, n_chunks)
        hs1 = hs0 + d * n_chunks
        zero = tl.zeros([BLOCK_D], dtype=tl.float32)

        if SINGLE:
            mask_l = idx < L
            mask = mask_d[:, None] & mask_l[None, :]
            u = tl.load(u_rows + idx[None, :] * su_l, mask, 0.0).to(tl.float32)
            dl0 = tl.load(d0_rows + idx[None, :] * sd_l, mask, 0.0).to(tl.float32)
            dl1 = tl.load(d1_rows + idx[None, :] * sd_l, mask, 0.0).to(tl.float32)
            Bv0 = tl.load(B0_ptr + idx * sB_l, mask_l, 0.0).to(tl.float32)
            Bv1 = tl.load(B0_ptr + sB_k + idx * sB_l, mask_l, 0.0).to(tl.float32)
            Cv0 = tl.load(C0_ptr + idx * sC_l, mask_l, 0.0).to(tl.float32)
            Cv1 = tl.load(C0_ptr + sC_k + idx * sC_l, mask_l, 0.0).to(tl.float32)
            h0 = _fwd_dir_single(u, dl0, A0, Bv0, bias0, False, FAST)
            h1 = _fwd_dir_single(u, dl1, A1, Bv1, bias1, True, FAST)
            y = Cv0[None, :] * h0 + Cv1[None, :] * h1 + dsum[:, None] * u
            tl.store(y_rows + idx[None, :] * sy_l, y, mask)
            tl.store(hs0, zero, mask_d)
            tl.store(hs1, zero, mask_d)
        else:
            carry = zero
            for c in range(n_chunks):               # direction 0: y = C0 h0 + (D0 + D1) u
                offs_l = c * BLOCK_L + idx
                mask_l = offs_l < L
                mask = mask_d[:, None] & mask_l[None, :]
                u = tl.load(u_rows + offs_l[None, :] * su_l, mask, 0.0).to(tl.float32)
                dl = tl.load(d0_rows + offs_l[None, :] * sd_l, mask, 0.0).to(tl.float32)
                Bv = tl.load(B0_ptr + offs_l * sB_l, mask_l, 0.0).to(tl.float32)
                Cv = tl.load(C0_ptr + offs_l * sC_l, mask_l, 0.0).to(tl.float32)
                tl.store(hs0 + c, carry, mask_d)
                h = _fwd_dir(u, dl, A0, Bv, bias0, mask, carry, False)
                tl.store(y_rows + offs_l[None, :] * sy_l, Cv[None, :] * h + dsum[:, None] * u,
                         mask)
                carry = _column(h, idx, BLOCK_L - 1)
            tl.debug_barrier()                      # y of direction 0 visible to all threads
            carry = zero
            for i in range(n_chunks):               # direction 1, last chunk first: y += C1 h1
                c = n_chunks - 1 - i
                offs_l = c * BLOCK_L + idx
                mask_l = offs_l < L
                mask = mask_d[:, None] & mask_l[None, :]
                u = tl.load(u_rows + offs_l[None, :] * su_l, mask, 0.0).to(tl.float32)
                dl = tl.load(d1_rows + offs_l[None, :] * sd_l, mask, 0.0).to(tl.float32)
                Bv = tl.load(B0_ptr + sB_k + offs_l * sB_l, mask_l, 0.0).to(tl.float32)
                Cv = tl.load(C0_ptr + sC_k + offs_l * sC_l, mask_l, 0.0).to(tl.float32)
                tl.store(hs1 + c, carry, mask_d)
                h = _fwd_dir(u, dl, A1, Bv, bias1, mask, carry, True)
                y_ptrs = y_rows + offs_l[None, :] * sy_l
                tl.store(y_ptrs, tl.load(y_ptrs, mask, 0.0) + Cv[None, :] * h, mask)
                carry = _column(h, idx, 0)

    @triton.jit
    def _bwd_dir(u, g, dl, dl_nb, A, Bv, Cv, bias, mask, mask_nb, h_in, s_in,
                 REVERSE: tl.constexpr):
        """One direction over one chunk. ``dl_nb`` is delta at the previous position in
        scan order's opposite (l+1 for direction 0, l-1 for direction 1): the state
        gradient runs the other way, with coefficient ``a`` of that neighbour.

        Returns h, s, du part, ddelta, and the dA, dbias, dB, dC partial sums."""
        dt, sig = _softplus_sigmoid(dl + bias[:, None])
        a = tl.where(mask, tl.exp(dt * A[:, None]), 1.0)
        b = tl.where(mask, dt * Bv[None, :] * u, 0.0)
        p, h = tl.associative_scan((a, b), 1, _combine, reverse=REVERSE)
        h = h + p * h_in[:, None]
        alpha = tl.where(mask_nb, tl.exp(_softplus(dl_nb + bias[:, None]) * A[:, None]), 0.0)
        q, s = tl.associative_scan((alpha, g * Cv[None, :]), 1, _combine, reverse=not REVERSE)
        s = s + q * s_in[:, None]
        ah = h - b                                   # a_l * h_{l-1}
        sdt = s * dt
        ddt = s * (A[:, None] * ah + Bv[None, :] * u)
        dx = tl.where(mask, ddt * sig, 0.0)
        dA = tl.sum(sdt * ah, axis=1)
        dbias = tl.sum(dx, axis=1)
        dB = tl.sum(sdt * u, axis=0)
        dC = tl.sum(g * h, axis=0)
        return h, s, sdt * Bv[None, :], dx, dA, dbias, dB, dC

    @triton.jit
    def _scan_bwd_kernel(
            g_ptr, u_ptr, dlt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, hs_ptr,
            du_ptr, du32_ptr, ddl_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
            d, L, n_dblocks, n_chunks,
            sg_b, sg_d, sg_l, su_b, su_d, su_l, sd_b, sd_k, sd_d, sd_l,
            sB_b, sB_k, sB_l, sC_b, sC_k, sC_l, sdu_b, sdu_d, sdu_l,
            sdd_b, sdd_k, sdd_d, sdd_l,
            BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, N_SUB: tl.constexpr,
            SINGLE: tl.constexpr):
        """A program owns N_SUB blocks of BLOCK_D channels of one sample: dB and dC, sums
        over channels, are accumulated across the blocks before one atomic add, which
        keeps the atomics off the critical path (N_SUB is 1 for multi-chunk L)."""
        pid = tl.program_id(0)
        pid_b = (pid // n_dblocks).to(tl.int64)
        idx = tl.arange(0, BLOCK_L)
        B0_ptr = B_ptr + pid_b * sB_b
        C0_ptr = C_ptr + pid_b * sC_b
        dB0_ptr = dB_ptr + pid_b * 2 * L                 # dB, dC: (Bt, 2, L) float32
        dC0_ptr = dC_ptr + pid_b * 2 * L
        zero = tl.zeros([BLOCK_D], dtype=tl.float32)
        mask_l = idx < L
        if SINGLE:   # per-position vectors shared by all channel blocks
            Bv0 = tl.load(B0_ptr + idx * sB_l, mask_l, 0.0).to(tl.float32)
            Cv0 = tl.load(C0_ptr + idx * sC_l, mask_l, 0.0).to(tl.float32)
            Bv1 = tl.load(B0_ptr + sB_k + idx * sB_l, mask_l, 0.0).to(tl.float32)
            Cv1 = tl.load(C0_ptr + sC_k + idx * sC_l, mask_l, 0.0).to(tl.float32)
        accB0 = tl.zeros([BLOCK_L], dtype=tl.float32)
        accC0 = tl.zeros([BLOCK_L], dtype=tl.float32)
        accB1 = tl.zeros([BLOCK_L], dtype=tl.float32)
        accC1 = tl.zeros([BLOCK_L], dtype=tl.float32)
        for sub in range(N_SUB):
            offs_d = ((pid % n_dblocks) * N_SUB + sub) * BLOCK_D + tl.arange(0, BLOCK_D)
            mask_d = offs_d < d
            A0 = tl.load(A_ptr + offs_d, mask_d, 0.0).to(tl.float32)
            A1 = tl.load(A_ptr + d + offs_d, mask_d, 0.0).to(tl.float32)
            bias0 = tl.load(bias_ptr + offs_d, mask_d, 0.0).to(tl.float32)
            bias1 = tl.load(bias_ptr + d + offs_d, mask_d, 0.0).to(tl.float32)
            dsum = (tl.load(D_ptr + offs_d, mask_d, 0.0).to(tl.float32)
                    + tl.load(D_ptr + d + offs_d, mask_d, 0.0).to(tl.float32))
            g_rows = g_ptr + pid_b * sg_b + offs_d[:, None] * sg_d
            u_rows = u_ptr + pid_b * su_b + offs_d[:, None] * su_d
            d0_rows = dlt_ptr + pid_b * sd_b + offs_d[:, None] * sd_d
            d1_rows = d0_rows + sd_k
            du_rows = du_ptr + pid_b * sdu_b + offs_d[:, None] * sdu_d
            du32_rows = du32_ptr + pid_b * sdu_b + offs_d[:, None] * sdu_d
            dd0_rows = ddl_ptr + pid_b * sdd_b + offs_d[:, None] * sdd_d
            dd1_rows = dd0_rows + sdd_k
            hs0 = hs_ptr + (pid_b * 2 * d + offs_d) * n_chunks
            hs1 = hs0 + d * n_chunks

            if SINGLE:
                mask = mask_d[:, None] & mask_l[None, :]
                u = tl.load(u_rows + idx[None, :] * su_l, mask, 0.0).to(tl.float32)
                g = tl.load(g_rows + idx[None, :] * sg_l, mask, 0.0).to(tl.float32)
                du = g * dsum[:, None]
                dD = tl.sum(g * u, axis=1)
                # direction 0: neighbour l + 1
                mask_nb = mask_d[:, None] & (idx + 1 < L)[None, :]
                dl = tl.load(d0_rows + idx[None, :] * sd_l, mask, 0.0).to(tl.float32)
                dl_nb = tl.load(d0_rows + (idx + 1)[None, :] * sd_l, mask_nb,
                                0.0).to(tl.float32)
                _, _, du_k, dx, dA0, dbias0, dB, dC = _bwd_dir(
                    u, g, dl, dl_nb, A0, Bv0, Cv0, bias0, mask, mask_nb, zero, zero, False)
                du += du_k
                tl.store(dd0_rows + idx[None, :] * sdd_l, dx, mask)
                accB0 += dB
                accC0 += dC
                # direction 1: neighbour l - 1
                mask_nb = mask & (idx >= 1)[None, :]
                dl = tl.load(d1_rows + idx[None, :] * sd_l, mask, 0.0).to(tl.float32)
                dl_nb = tl.load(d1_rows + (idx - 1)[None, :] * sd_l, mask_nb,
                                0.0).to(tl.float32)
                _, _, du_k, dx, dA1, dbias1, dB, dC = _bwd_dir(
                    u, g, dl, dl_nb, A1, Bv1, Cv1, bias1, mask, mask_nb, zero, zero, True)
                du += du_k
                tl.store(dd1_rows + idx[None, :] * sdd_l, dx, mask)
                accB1 += dB
                accC1 += dC
                tl.store(du_rows + idx[None, :] * sdu_l, du, mask)
            else:
                dD = zero
                dA0 = zero
                dbias0 = zero
                s_in = zero
                for i in range(n_chunks):       # direction 0: state gradient runs backwards
                    c = n_chunks - 1 - i
                    offs_l = c * BLOCK_L + idx
                    mask_c = offs_l < L
                    mask = mask_d[:, None] & mask_c[None, :]
                    mask_nb = mask_d[:, None] & (offs_l + 1 < L)[None, :]
                    u = tl.load(u_rows + offs_l[None, :] * su_l, mask, 0.0).to(tl.float32)
                    g = tl.load(g_rows + offs_l[None, :] * sg_l, mask, 0.0).to(tl.float32)
                    dl = tl.load(d0_rows + offs_l[None, :] * sd_l, mask, 0.0).to(tl.float32)
                    dl_nb = tl.load(d0_rows + (offs_l + 1)[None, :] * sd_l, mask_nb,
                                    0.0).to(tl.float32)
                    Bv = tl.load(B0_ptr + offs_l * sB_l, mask_c, 0.0).to(tl.float32)
                    Cv = tl.load(C0_ptr + offs_l * sC_l, mask_c, 0.0).to(tl.float32)
                    h_in = tl.load(hs0 + c, mask_d, 0.0)
                    _, s, du_k, dx, dA_c, dbias_c, dB, dC = _bwd_dir(
                        u, g, dl, dl_nb, A0, Bv, Cv, bias0, mask, mask_nb, h_in, s_in, False)
                    tl.store(du32_rows + offs_l[None, :] * sdu_l, du_k + g * dsum[:, None],
                             mask)
                    tl.store(dd0_rows + offs_l[None, :] * sdd_l, dx, mask)
                    tl.atomic_add(dB0_ptr + offs_l, dB, mask_c)
                    tl.atomic_add(dC0_ptr + offs_l, dC, mask_c)
                    dD += tl.sum(g * u, axis=1)
                    dA0 += dA_c
                    dbias0 += dbias_c
                    s_in = _column(s, idx, 0)
                tl.debug_barrier()              # du of direction 0 visible to all threads
                dA1 = zero
                dbias1 = zero
                s_in = zero
                for c in range(n_chunks):       # direction 1: state gradient runs forwards
                    offs_l = c * BLOCK_L + idx
                    mask_c = offs_l < L
                    mask = mask_d[:, None] & mask_c[None, :]
                    mask_nb = mask & (offs_l >= 1)[None, :]
                    u = tl.load(u_rows + offs_l[None, :] * su_l, mask, 0.0).to(tl.float32)
                    g = tl.load(g_rows + offs_l[None, :] * sg_l, mask, 0.0).to(tl.float32)
                    dl = tl.load(d1_rows + offs_l[None, :] * sd_l, mask, 0.0).to(tl.float32)
                    dl_nb = tl.load(d1_rows + (offs_l - 1)[None, :] * sd_l, mask_nb,
                                    0.0).to(tl.float32)
                    Bv = tl.load(B0_ptr + sB_k + offs_l * sB_l, mask_c, 0.0).to(tl.float32)
                    Cv = tl.load(C0_ptr + sC_k + offs_l * sC_l, mask_c, 0.0).to(tl.float32)
                    h_in = tl.load(hs1 + c, mask_d, 0.0)
                    _, s, du_k, dx, dA_c, dbias_c, dB, dC = _bwd_dir(
                        u, g, dl, dl_nb, A1, Bv, Cv, bias1, mask, mask_nb, h_in, s_in, True)
                    du_prev = tl.load(du32_rows + offs_l[None, :] * sdu_l, mask, 0.0)
                    tl.store(du_rows + offs_l[None, :] * sdu_l, du_prev + du_k, mask)
                    tl.store(dd1_rows + offs_l[None, :] * sdd_l, dx, mask)
                    tl.atomic_add(dB0_ptr + L + offs_l, dB, mask_c)
                    tl.atomic_add(dC0_ptr + L + offs_l, dC, mask_c)
                    dA1 += dA_c
                    dbias1 += dbias_c
                    s_in = _column(s, idx, BLOCK_L - 1)
            tl.atomic_add(dA_ptr + offs_d, dA0, mask_d)
            tl.atomic_add(dA_ptr + d + offs_d, dA1, mask_d)
            tl.atomic_add(dbias_ptr + offs_d, dbias0, mask_d)
            tl.atomic_add(dbias_ptr + d + offs_d, dbias1, mask_d)
            tl.atomic_add(dD_ptr + offs_d, dD, mask_d)
            tl.atomic_add(dD_ptr + d + offs_d, dD, mask_d)
        if SINGLE:
            tl.atomic_add(dB0_ptr + idx, accB0, mask_l)
            tl.atomic_add(dC0_ptr + idx, accC0, mask_l)
            tl.atomic_add(dB0_ptr + L + idx, accB1, mask_l)
            tl.atomic_add(dC0_ptr + L + idx, accC1, mask_l)


def _check(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
    bt, d, length = u.shape
    if delta.shape != (bt, 2, d, length) or A.shape != (2, d) or B.shape != (bt, 2, length) \
            or C.shape != (bt, 2, length):
        raise ValueError(f'scan_triton: expected u (B, d, L), delta (B, 2, d, L), A/D/bias '
                         f'(2, d), B/C (B, 2, L); got u {tuple(u.shape)}, delta '
                         f'{tuple(delta.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, '
                         f'C {tuple(C.shape)}.')


def _empty(like: Tensor, shape: Optional[Tuple[int, ...]] = None,
           dtype: Optional[torch.dtype] = None) -> Tensor:
    """Every buffer the kernels write without reading comes from here (the tests poison it
    with NaN): ``like``'s layout, or a contiguous ``shape``."""
    if shape is None:
        return torch.empty_like(like, dtype=dtype)
    return like.new_empty(shape, dtype=dtype)


def _alloc_fwd(u: Tensor) -> Tuple[Tensor, Tensor]:
    """y mirrors u's memory layout (so a channel-last u gives a channel-last y and the
    LayerNorm after the scan needs no copy); hs holds each chunk's entering state."""
    bt, d, length = u.shape
    n_chunks = _blocks(bt, d, length, FWD_TILE)[2] if HAS_TRITON else 1
    y = _empty(u, dtype=torch.float32)
    hs = _empty(u, (bt, 2, d, n_chunks), torch.float32)
    return y, hs


def _scan_fwd_impl(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                   delta_bias: Tensor) -> Tuple[Tensor, Tensor]:
    _check(u, delta, A, B, C)
    A, D, delta_bias = A.contiguous(), D.contiguous(), delta_bias.contiguous()
    y, hs = _alloc_fwd(u)
    bt, d, length = u.shape
    tile, warps = FWD_BY_L.get(_block_l(length), (FWD_TILE, FWD_WARPS))
    block_d, block_l, n_chunks = _blocks(bt, d, length, tile)
    n_db = triton.cdiv(d, block_d)
    LAST_COMPILED['fwd'] = _scan_fwd_kernel[(bt * n_db, )](
        u, delta, A, B, C, D, delta_bias, y, hs, d, length, n_db, n_chunks,
        *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *y.stride(),
        BLOCK_D=block_d, BLOCK_L=block_l, SINGLE=n_chunks == 1, FAST=FWD_FAST_SOFTPLUS,
        num_warps=warps)
    return y, hs


def _scan_bwd_impl(dy: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Tensor, delta_bias: Tensor, hs: Tensor) -> Tuple[Tensor, ...]:
    A, D, delta_bias = A.contiguous(), D.contiguous(), delta_bias.contiguous()
    bt, d, length = u.shape
    tile, warps = BWD_BY_L.get(_block_l(length), (BWD_TILE, BWD_WARPS))
    block_d, block_l, n_chunks = _blocks(bt, d, length, tile)
    n_sub = 1
    if n_chunks == 1:
        n_sub = max(1, min(BWD_CHANNELS // block_d, triton.next_power_of_2(d) // block_d))
        while n_sub > 1 and bt * triton.cdiv(d, block_d * n_sub) < MIN_PROGRAMS:
            n_sub //= 2
    n_db = triton.cdiv(d, block_d * n_sub)
    du = _empty(u)
    du32 = du if n_chunks == 1 or du.dtype == torch.float32 else _empty(u, dtype=torch.float32)
    ddelta = _empty(delta)
    f32 = dict(device=u.device, dtype=torch.float32)
    dA, dD, dbias = (torch.zeros(2, d, **f32) for _ in range(3))
    dB, dC = torch.zeros(bt, 2, length, **f32), torch.zeros(bt, 2, length, **f32)
    LAST_COMPILED['bwd'] = _scan_bwd_kernel[(bt * n_db, )](
        dy, u, delta, A, B, C, D, delta_bias, hs, du, du32, ddelta, dA, dB, dC, dD, dbias,
        d, length, n_db, n_chunks,
        *dy.stride(), *u.stride(), *delta.stride(), *B.stride(), *C.stride(), *du.stride(),
        *ddelta.stride(),
        BLOCK_D=block_d, BLOCK_L=block_l, N_SUB=n_sub, SINGLE=n_chunks == 1,
        num_warps=warps)
    return (du, ddelta, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype), dD.to(D.dtype),
            dbias.to(delta_bias.dtype))


if HAS_TRITON:

    @torch.library.custom_op('mmmobilemamba::scan_fwd', mutates_args=())
    def scan_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                 delta_bias: Tensor) -> Tuple[Tensor, Tensor]:
        """(y, chunk states); see ``selective_scan`` for the arguments."""
        return _scan_fwd_impl(u, delta, A, B, C, D, delta_bias)

    @scan_fwd.register_fake
    def _scan_fwd_fake(u, delta, A, B, C, D, delta_bias):
        return _alloc_fwd(u)

    @torch.library.custom_op('mmmobilemamba::scan_bwd', mutates_args=())
    def scan_bwd(dy: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                 D: Tensor, delta_bias: Tensor, hs: Tensor
                 ) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Gradients for (u, delta, A, B, C, D, delta_bias)."""
        return _scan_bwd_impl(dy, u, delta, A, B, C, D, delta_bias, hs)

    @scan_bwd.register_fake
    def _scan_bwd_fake(dy, u, delta, A, B, C, D, delta_bias, hs):
        bt, d, length = u.shape
        return (torch.empty_like(u), torch.empty_like(delta), A.new_empty(2, d),
                B.new_empty(bt, 2, length), C.new_empty(bt, 2, length), D.new_empty(2, d),
                delta_bias.new_empty(2, d))

    def _setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])
        ctx.save_for_backward(*inputs, output[1])

    def _backward(ctx, dy, _dhs):
        return scan_bwd(dy, *ctx.saved_tensors)

    scan_fwd.register_autograd(_backward, setup_context=_setup_context)


def scan_triton(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor,
                delta_bias: Tensor) -> Tensor:
    """Bidirectional d_state=1 scan in Triton; same arguments and result as
    ``scan_reference`` (float32 output; inputs float32, bfloat16 or float16, read as they
    are, any strides)."""
    if not HAS_TRITON:
        raise RuntimeError('scan_triton needs the triton package.')
    return scan_fwd(u, delta, A, B, C, D, delta_bias)[0]
