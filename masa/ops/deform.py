"""Modulated deformable convolution (DCNv2) with vectorised tensor ops, fast on CPU.

:func:`modulated_deform_conv2d` computes what ``torchvision.ops.deform_conv2d(input, offset, weight,
bias, stride, padding, dilation, mask)`` computes (one offset group, ``groups=1``), but instead of
torchvision's scalar per-sample CPU loop it does, for all ``kh * kw`` kernel taps at once:

1. sampling positions ``p = p0 * stride - padding + k * dilation + offset`` (input pixel units),
   with ``offset[:, 2k]`` the row (y) and ``offset[:, 2k + 1]`` the column (x) offset of tap
   ``k = i * kw + j`` (row-major over the kernel), as torchvision reads them;
2. one :func:`torch.nn.functional.grid_sample` call (bilinear, ``padding_mode="zeros"``,
   ``align_corners=True``) on the input zero-padded by one pixel on each side. Bilinear sampling
   with every out-of-range corner taken as 0 is exactly torchvision's ``bilinear_interpolate``
   (which returns 0 for ``h <= -1``, ``h >= H``, ...: there every corner with a non-zero weight is
   out of range anyway). The one-pixel pad keeps ``align_corners=True`` well defined for inputs of
   height or width 1 and changes nothing else (the pad is zeros);
3. multiplication by the mask, giving the ``(B, C_in * kh * kw, H_out * W_out)`` column matrix in
   the order of ``weight.view(C_out, C_in * kh * kw)`` (channel-major, then tap), and one batched
   matmul, plus ``bias``.

Everything is differentiable through autograd (``grid_sample``'s backward gives the input and the
sampling-position gradients, hence the offset gradients), so it can be trained through.

Dtypes: float32 and float64 are computed in their own dtype. float16 / bfloat16 inputs are
computed in float32 (CPU ``grid_sample`` and matmul in half precision are slow or unsupported) and
the result is cast back to the input dtype.

:func:`deform_conv2d_auto` dispatches: this implementation for CPU tensors, torchvision's fused
kernel otherwise (CUDA).
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import deform_conv2d as _tv_deform_conv2d

__all__ = ["modulated_deform_conv2d", "deform_conv2d_auto"]

IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair) -> Tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"expected an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def modulated_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    mask: Optional[Tensor],
    weight: Tensor,
    bias: Optional[Tensor] = None,
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
        raise ValueError(f"modulated_deform_conv2d: only groups=1 is supported (weight has {w_in} input "
                         f"channels, input has {c_in})")
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

    out_dtype = input.dtype
    dtype = out_dtype if out_dtype in (torch.float32, torch.float64) else torch.float32
    x = input.to(dtype)
    offset = offset.to(dtype)
    weight = weight.to(dtype)

    # Positions in the coordinates of the input padded by one zero pixel on each side.
    dev = x.device
    base_y = (torch.arange(out_h, device=dev, dtype=dtype) * stride_h - pad_h + 1).view(1, out_h, 1)
    base_x = (torch.arange(out_w, device=dev, dtype=dtype) * stride_w - pad_w + 1).view(1, 1, out_w)
    tap_y = (torch.arange(kh, device=dev, dtype=dtype) * dil_h).repeat_interleave(kw)  # (taps,)
    tap_x = (torch.arange(kw, device=dev, dtype=dtype) * dil_w).repeat(kh)
    # normalised grid coordinate = pos * 2 / (size_padded - 1) - 1 (align_corners=True)
    sy = 2.0 / (height + 1)  # padded height is height + 2
    sx = 2.0 / (width + 1)
    const_y = (base_y + tap_y.view(taps, 1, 1)) * sy - 1.0  # (taps, out_h, 1)
    const_x = (base_x + tap_x.view(taps, 1, 1)) * sx - 1.0  # (taps, 1, out_w)
    off = offset.reshape(batch, taps, 2, out_h, out_w)
    gy = off[:, :, 0] * sy + const_y  # (B, taps, out_h, out_w)
    gx = off[:, :, 1] * sx + const_x
    grid = torch.stack((gx, gy), dim=-1).view(batch, taps * out_h, out_w, 2)

    x_pad = F.pad(x, (1, 1, 1, 1))
    cols = F.grid_sample(x_pad, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    cols = cols.view(batch, c_in, taps, out_h, out_w)
    if mask is not None:
        cols = cols * mask.to(dtype).view(batch, 1, taps, out_h, out_w)
    cols = cols.reshape(batch, c_in * taps, out_h * out_w)
    out = torch.matmul(weight.reshape(c_out, c_in * taps), cols)  # (B, C_out, H_out * W_out)
    if bias is not None:
        out = out + bias.to(dtype).view(1, c_out, 1)
    return out.view(batch, c_out, out_h, out_w).to(out_dtype)


def deform_conv2d_auto(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mask: Optional[Tensor] = None,
) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (same signature): :func:`modulated_deform_conv2d` on CPU.

    Uses the vectorised implementation when ``input`` is on the CPU and the offsets describe one
    offset group with ``groups=1``; torchvision's kernel otherwise (e.g. on CUDA, where it is fused).
    """
    if (
        input.device.type == "cpu"
        and input.dim() == 4
        and weight.dim() == 4
        and weight.shape[1] == input.shape[1]
        and offset.dim() == 4
        and offset.shape[1] == 2 * weight.shape[2] * weight.shape[3]
    ):
        return modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation)
    return _tv_deform_conv2d(input, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
