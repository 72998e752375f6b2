"""Modulated deformable convolution (DCNv2) with vectorised tensor ops, fast on CPU.

:func:`modulated_deform_conv2d` computes what ``torchvision.ops.deform_conv2d(input, offset, weight,
bias, stride, padding, dilation, mask)`` computes (one offset group, ``groups=1``), forward and
backward, but instead of torchvision's scalar per-(channel, pixel, tap) CPU loop it does:

1. For every output pixel ``p`` and kernel tap ``k = i * kw + j`` (row-major over the kernel) the
   sampling position ``(y, x) = (p_y * stride - pad + i * dil + offset[2k], p_x * stride - pad + j *
   dil + offset[2k + 1])`` (channel ``2k`` of the offsets is the row offset, ``2k + 1`` the column
   offset, as torchvision reads them), computed in the same order as torchvision so that integer
   positions (e.g. zero offsets) stay exactly integer.
2. The four bilinear corners ``(floor(y) + {0, 1}, floor(x) + {0, 1})`` with weights
   ``(1 - ly)(1 - lx)``, ... times the mask, each corner out of the image getting weight 0. This is
   torchvision's ``bilinear_interpolate`` (its extra "return 0 when ``y <= -1`` or ``y >= H`` ..."
   only affects corners whose weight is already 0). The offset gradient, obtained by autograd
   through ``ly = y - floor(y)``, is torchvision's ``get_coordinate_weight`` (also with ``floor``,
   i.e. the same one-sided derivative at integer positions, and no "fully outside" test).
3. One fused gather + weighted sum over the channels-last input,
   :func:`torch.nn.functional.embedding_bag` (``mode="sum"``, ``per_sample_weights`` = the four
   corner weights), giving the ``(B, H_out * W_out, kh * kw * C_in)`` column matrix, then one
   matmul with the weight (tap-major, channel-minor order) and the bias.

Everything is differentiable through autograd (``embedding_bag`` gives the input gradient as the
scatter-add of torchvision's ``col2im`` and the per-corner weight gradients, hence the offset and
mask gradients), so it can be trained through.

(``grid_sample`` was tried first: its forward agrees, but its sampling positions go through a
normalise/unnormalise round trip that moves integer positions by an ulp, so at zero offsets -- the
state of a freshly initialised offset conv -- the offset gradient takes the other one-sided
derivative and differs from torchvision's by O(1).)

Dtypes: float32 and float64 are computed in their own dtype. float16 / bfloat16 are computed in
float32 (CPU gathers and matmuls in half precision are slow) and the result is cast back, so they
agree with torchvision run in float32 on the upcast inputs, not bit-for-bit with torchvision's
half-precision kernel (which also rounds the sampling positions to half precision; its CPU
kernel has no bfloat16 at all). Under autocast the function runs with autocast disabled, i.e. in
full precision, as torchvision's CPU kernel does (and its CUDA kernel, which autocasts to float32).

Memory: the column matrix holds ``B * H_out * W_out * kh * kw * C_in`` values, as torchvision's.

:func:`deform_conv2d_auto` dispatches: this implementation for CPU tensors, torchvision's fused
kernel otherwise (CUDA).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import deform_conv2d as _tv_deform_conv2d

__all__ = ["modulated_deform_conv2d", "deform_conv2d_auto"]

IntPair = int | tuple[int, int]


def _pair(v: IntPair) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def modulated_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 1,
    dilation: IntPair = 1,
) -> Tensor:
    """DCNv2 ``(B, C_in, H, W) -> (B, C_out, H_out, W_out)``, equal to torchvision's ``deform_conv2d``.

    ``offset``: ``(B, 2 * kh * kw, H_out, W_out)``; ``mask``: ``(B, kh * kw, H_out, W_out)`` or
    ``None`` (all ones, DCNv1); ``weight``: ``(C_out, C_in, kh, kw)``; ``bias``: ``(C_out,)``.
    Only one offset group and ``groups=1`` are supported (``ValueError`` otherwise). Any strides
    (non-contiguous tensors) are accepted. See the module docstring for dtypes.
    """
    if input.dim() != 4 or offset.dim() != 4 or weight.dim() != 4:
        raise ValueError("modulated_deform_conv2d: input, offset and weight must be 4-D")
    batch, c_in, height, width = input.shape
    c_out, w_in, kh, kw = weight.shape
    taps = kh * kw
    if w_in != c_in:
        raise ValueError(
            f"modulated_deform_conv2d: only groups=1 is supported (weight has {w_in} input channels, "
            f"input has {c_in})"
        )
    stride_h, stride_w = _pair(stride)
    pad_h, pad_w = _pair(padding)
    dil_h, dil_w = _pair(dilation)
    out_h = (height + 2 * pad_h - dil_h * (kh - 1) - 1) // stride_h + 1
    out_w = (width + 2 * pad_w - dil_w * (kw - 1) - 1) // stride_w + 1
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"modulated_deform_conv2d: empty output {(out_h, out_w)} for input {(height, width)}")
    if tuple(offset.shape) != (batch, 2 * taps, out_h, out_w):
        raise ValueError(
            f"modulated_deform_conv2d: offset must be {(batch, 2 * taps, out_h, out_w)} (one offset group), "
            f"got {tuple(offset.shape)}"
        )
    if mask is not None and tuple(mask.shape) != (batch, taps, out_h, out_w):
        raise ValueError(
            f"modulated_deform_conv2d: mask must be {(batch, taps, out_h, out_w)} (one offset group), "
            f"got {tuple(mask.shape)}"
        )
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"modulated_deform_conv2d: bias must be ({c_out},), got {tuple(bias.shape)}")

    if input.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(input.device.type):
        # like torchvision's kernel (no CPU autocast; float32 under CUDA autocast): full precision
        with torch.autocast(device_type=input.device.type, enabled=False):
            return _modulated_deform_conv2d(
                input, offset, mask, weight, bias, (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w), out_h, out_w
            )
    return _modulated_deform_conv2d(
        input, offset, mask, weight, bias, (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w), out_h, out_w
    )


def _modulated_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out_h: int,
    out_w: int,
) -> Tensor:
    """:func:`modulated_deform_conv2d` after the checks (pairs already normalised)."""
    batch, c_in, height, width = input.shape
    c_out, _, kh, kw = weight.shape
    taps = kh * kw
    (stride_h, stride_w), (pad_h, pad_w), (dil_h, dil_w) = stride, padding, dilation
    out_dtype = input.dtype
    dtype = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    dev = input.device

    # Sampling positions (B, taps, 2, H_out, W_out), [:, :, 0] = y and [:, :, 1] = x (the offset
    # layout): integer part + offset, added in torchvision's order so integer positions stay exact.
    rows = torch.arange(out_h, device=dev) * stride_h - pad_h  # (H_out,)
    cols = torch.arange(out_w, device=dev) * stride_w - pad_w  # (W_out,)
    tap_y = (torch.arange(kh, device=dev) * dil_h).repeat_interleave(kw)  # (taps,)
    tap_x = (torch.arange(kw, device=dev) * dil_w).repeat(kh)
    base = torch.stack(
        (
            (tap_y.view(taps, 1, 1) + rows.view(1, out_h, 1)).expand(taps, out_h, out_w),
            (tap_x.view(taps, 1, 1) + cols.view(1, 1, out_w)).expand(taps, out_h, out_w),
        ),
        dim=1,
    ).to(dtype)  # (taps, 2, H_out, W_out)
    pos = offset.to(dtype).reshape(batch, taps, 2, out_h, out_w) + base

    # Bilinear corners lo = floor(pos), hi = lo + 1 per coordinate; a corner row/column outside the
    # image gets weight 0 (and a clamped, in-range index).
    with torch.no_grad():
        lo = pos.floor()
        hi = lo + 1
        zero = torch.zeros((), device=dev, dtype=dtype)
        limit = torch.tensor([height - 1, width - 1], device=dev, dtype=dtype).view(1, 1, 2, 1, 1)
        lo_c = torch.clamp(lo, zero, limit)
        hi_c = torch.clamp(hi, zero, limit)
        lo_in = lo_c == lo
        hi_in = hi_c == hi
        corner = torch.stack((lo_c, hi_c), dim=3).long()  # (B, taps, 2 [y/x], 2 [lo/hi], H_out, W_out)
        image_start = (torch.arange(batch, device=dev) * (height * width)).view(batch, 1, 1, 1, 1)
        row_start = corner[:, :, 0] * width + image_start  # (B, taps, 2 [y lo/hi], H_out, W_out)
        index = row_start.unsqueeze(3) + corner[:, :, 1].unsqueeze(2)  # (B, taps, 2 [y], 2 [x], H_out, W_out)
        # bag layout (B, H_out, W_out, taps, 4 corners y0x0, y0x1, y1x0, y1x1): the column-matrix rows.
        # NaN / infinite offsets: keep the index in range (those samples get weight 0 below).
        index = index.permute(0, 4, 5, 1, 2, 3).reshape(-1).clamp_(0, batch * height * width - 1)
    frac = pos - lo  # carries the offset gradient (d floor / d pos = 0)
    # where, not a product: an infinite offset (frac = inf - inf = NaN) samples 0, as in torchvision
    lin = torch.stack((torch.where(lo_in, 1 - frac, 0.0), torch.where(hi_in, frac, 0.0)), dim=3)
    # lin: (B, taps, 2 [y/x], 2 [lo/hi], H_out, W_out)
    wy = lin[:, :, 0]
    if mask is not None:
        wy = wy * mask.to(dtype).reshape(batch, taps, 1, out_h, out_w)
    corner_w = wy.unsqueeze(3) * lin[:, :, 1].unsqueeze(2)  # (B, taps, 2 [y], 2 [x], H_out, W_out)
    corner_w = corner_w.permute(0, 4, 5, 1, 2, 3).reshape(-1)

    # channels last, row-major: embedding_bag is ~20x slower on a strided table
    table = input.to(dtype).permute(0, 2, 3, 1).contiguous().view(batch * height * width, c_in)
    n_bags = batch * out_h * out_w * taps
    bag_start = torch.arange(0, 4 * n_bags, 4, device=dev)
    sampled = F.embedding_bag(index, table, bag_start, mode="sum", per_sample_weights=corner_w)
    columns = sampled.view(batch, out_h * out_w, taps * c_in)
    w_mat = weight.to(dtype).permute(0, 2, 3, 1).reshape(c_out, taps * c_in)  # tap-major, channel-minor
    out = torch.matmul(w_mat, columns.transpose(1, 2))  # (B, C_out, H_out * W_out)
    if bias is not None:
        out = out + bias.to(dtype).view(1, c_out, 1)
    return out.view(batch, c_out, out_h, out_w).to(out_dtype)


def deform_conv2d_auto(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (same signature): :func:`modulated_deform_conv2d` on CPU.

    Uses the vectorised implementation when ``input`` is on the CPU and the call has one offset
    group and ``groups=1``; torchvision's kernel otherwise (e.g. on CUDA, where it is fused).
    """
    if (
        input.device.type == "cpu"
        and input.dim() == 4
        and weight.dim() == 4
        and offset.dim() == 4
        and weight.shape[1] == input.shape[1]
        and offset.shape[1] == 2 * weight.shape[2] * weight.shape[3]
        and (mask is None or mask.shape[1] == weight.shape[2] * weight.shape[3])
    ):
        return modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation)
    return _tv_deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
