"""Vectorised pure-PyTorch selective scan: runs on any device, differentiates and exports.

The d_state=1 recurrence ``h_l = a_l h_{l-1} + x_l`` is solved by a chunked (radix) scan:
positions are grouped in chunks of ``chunk_size``, each chunk is scanned locally from a
zero state (``chunk_size`` unrolled element-wise steps over *all* chunks at once), the
chunk end states are themselves a recurrence of length ``L / chunk_size`` solved by the
same function, and each chunk then adds its decayed incoming state. Python only recurses
on the shape (about log_chunk(L) levels), never on tensor values, and the total work is
O(L), unlike a Hillis-Steele scan (O(L log L)) or a masked T x T chunk matrix (O(L T)
exponentials); both of those measured slower on CPU.

The decays ``a = exp(dt * A)`` lie in (0, 1] for A < 0 and are only ever multiplied
together, so nothing can overflow however large ``dt * A`` gets (products underflow to 0,
which is the exact limit), and gradients stay finite.
"""
import torch
import torch.nn.functional as F

#: Measured fastest on CPU (2 threads) for d=320..544, L=16..4200; 3..8 are within ~20%.
DEFAULT_CHUNK_SIZE = 4


def linear_scan(a: torch.Tensor, x: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE,
                dim: int = -1) -> torch.Tensor:
    """Solve ``h_l = a_l h_{l-1} + x_l`` (``h_{-1} = 0``) along ``dim``, vectorised.

    ``dim`` is -1 (channels first, positions last) or -2 (positions, then channels: the
    sequence-major layout of ``SS2D.forward_seq_major``, where every split and concat
    moves whole rows of channels). ``a`` and ``x`` have the same shape. Sizes are read as
    Python ints, except dim 0's, so an ONNX trace holds no shape arithmetic.
    """
    if dim not in (-1, -2):
        raise ValueError(f'linear_scan runs along dim -1 or -2, got {dim}.')
    if x.dim() + dim < 1:  # no leading dim to stand for the batch
        return linear_scan(a.unsqueeze(0), x.unsqueeze(0), chunk_size, dim).squeeze(0)
    shape = (-1, ) + tuple(int(s) for s in x.shape[1:])
    trailing = shape[len(shape) + dim + 1:]         # () or (channels, )
    length = shape[dim]
    size = max(2, min(chunk_size, length))
    chunks = -(-length // size)
    pad = chunks * size - length
    if pad:  # padded tail positions are computed and dropped; they never feed real ones
        widths = (0, 0) * len(trailing) + (0, pad)
        a, x = F.pad(a, widths), F.pad(x, widths)
    # size pieces of (N, chunks, 1[, d]): position i of every chunk
    a_c = a.reshape((-1, chunks, size) + trailing).split(1, 2)
    x_c = x.reshape((-1, chunks, size) + trailing).split(1, 2)
    h, decay = [x_c[0]], [a_c[0]]  # local state from zero, and decay since chunk start
    for i in range(1, size):
        h.append(torch.addcmul(x_c[i], a_c[i], h[-1]))  # fused a * h + x
        decay.append(a_c[i] * decay[-1])
    if chunks > 1:  # carry the chunk end states across chunks
        ends = linear_scan(decay[-1].reshape((-1, chunks) + trailing),
                           h[-1].reshape((-1, chunks) + trailing), chunk_size, dim)
        widths = (0, 0) * len(trailing) + (1, 0)
        h_in = F.pad(ends[:, :-1], widths).unsqueeze(2)
        h = [torch.addcmul(h_i, d_i, h_in) for h_i, d_i in zip(h[:-1], decay[:-1])] + [
            ends.unsqueeze(2)]
    out = torch.cat(h, 2).reshape((-1, chunks * size) + trailing)
    return (out[:, :length] if pad else out).reshape(shape)


#: Levels of ``linear_scan_doubling``: sequences up to 2**16 positions (a 4096 x 4096 image
#: at the SS2D stride of 16).
DOUBLING_LEVELS = 16


def linear_scan_doubling(a: torch.Tensor, x: torch.Tensor, levels: int = DOUBLING_LEVELS
                         ) -> torch.Tensor:
    """Same recurrence as ``linear_scan`` by recursive doubling (Hillis-Steele), with a
    structure that does not depend on L: ``levels`` steps, each composing every position with
    the one ``2**k`` before it. No Python branch reads the shape, so ``torch.export`` keeps L
    symbolic and an ONNX export runs at any H, W. O(L levels) work: for export, not speed."""
    if not torch.compiler.is_compiling() and x.shape[-1] > 2 ** levels:
        raise ValueError(f'linear_scan_doubling: L = {x.shape[-1]} exceeds 2**{levels}; '
                         'raise `levels`.')
    length = x.shape[-1]
    for k in range(levels):
        shift = 2 ** k
        x = torch.addcmul(x, a, F.pad(x, (shift, 0))[..., :length])
        a = a * F.pad(a, (shift, 0), value=1.0)[..., :length]
    return x


def flip_direction1(t: torch.Tensor) -> torch.Tensor:
    """Flip direction 1 (dim 1) along positions so both directions scan forwards."""
    return torch.stack([t[:, 0], t[:, 1].flip(-1)], 1)


def scan_chunked(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                 C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor,
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> torch.Tensor:
    """Bidirectional d_state=1 scan without a Python loop over positions (see ``selective_scan``).

    ``chunk_size`` only trades speed (see ``DEFAULT_CHUNK_SIZE``); any value >= 2 gives the
    same result up to rounding.
    """
    return _bidirectional(u, delta, A, B, C, D, delta_bias,
                          lambda a, x: linear_scan(a, x, chunk_size))


def scan_doubling(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                  C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor,
                  levels: int = DOUBLING_LEVELS) -> torch.Tensor:
    """``scan_chunked`` with ``linear_scan_doubling``: the scan SS2D traces for ONNX exports
    with dynamic H and W (``mmmobilemamba.deployment.export_formulation``)."""
    return _bidirectional(u, delta, A, B, C, D, delta_bias,
                          lambda a, x: linear_scan_doubling(a, x, levels))


def _bidirectional(u, delta, A, B, C, D, delta_bias, solve) -> torch.Tensor:
    """Both directions as one batched forward recurrence ``solve(a, x)``, merged."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C, D, delta_bias = (t.to(dtype) for t in (u, delta, A, B, C, D, delta_bias))
    u_k = torch.stack([u, u.flip(-1)], 1)                               # (Bt, 2, d, L)
    dt = F.softplus(flip_direction1(delta) + delta_bias[None, :, :, None])
    B, C = flip_direction1(B), flip_direction1(C)                       # (Bt, 2, L)
    a = torch.exp(dt * A[None, :, :, None])
    h = solve(a, dt * B[:, :, None] * u_k)
    y = C[:, :, None] * h
    return y[:, 0] + y[:, 1].flip(-1) + D.sum(0)[None, :, None] * u
