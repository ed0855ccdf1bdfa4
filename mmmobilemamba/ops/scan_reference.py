"""The plain sequential selective scan: slow, obviously correct, float64-capable ground truth."""
import torch
import torch.nn.functional as F


def scan_reference(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, D: torch.Tensor, delta_bias: torch.Tensor) -> torch.Tensor:
    """Bidirectional d_state=1 scan, one Python step per position (see ``selective_scan``)."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, B, C = (t.to(dtype) for t in (u, delta, B, C))
    A, D, delta_bias = (t.to(dtype) for t in (A, D, delta_bias))
    dt = F.softplus(delta + delta_bias[None, :, :, None])        # (Bt, K, d, L)
    length = u.shape[-1]
    y = D.sum(0)[None, :, None] * u
    # Unbind once: indexing one position at a time would make backward quadratic in L.
    u_l = u.unbind(-1)
    for k, order in ((0, range(length)), (1, reversed(range(length)))):
        dt_l, B_l, C_l = dt[:, k].unbind(-1), B[:, k].unbind(-1), C[:, k].unbind(-1)
        h = u.new_zeros(u.shape[:2])
        outs = [None] * length
        for pos in order:
            h = torch.exp(dt_l[pos] * A[k]) * h + dt_l[pos] * B_l[pos][:, None] * u_l[pos]
            outs[pos] = C_l[pos][:, None] * h
        y = y + torch.stack(outs, dim=-1)
    return y
