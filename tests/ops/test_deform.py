"""masa.ops.deform: the vectorised DCNv2 against torchvision.ops.deform_conv2d (forward and grads)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from masa.ops.deform import deform_conv2d_auto, modulated_deform_conv2d


def _out_size(size: int, stride: int, padding: int = 1, dilation: int = 1, k: int = 3) -> int:
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def _case(batch, c_in, height, width, stride, c_out=8, max_offset=5.0, zero_offset=False, dtype=torch.float32,
          padding=1, dilation=1, k=(3, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    oh = _out_size(height, stride, padding, dilation, k[0])
    ow = _out_size(width, stride, padding, dilation, k[1])
    taps = k[0] * k[1]
    x = torch.randn(batch, c_in, height, width, generator=g, dtype=dtype)
    if zero_offset:
        offset = torch.zeros(batch, 2 * taps, oh, ow, dtype=dtype)
    else:
        offset = (torch.rand(batch, 2 * taps, oh, ow, generator=g, dtype=dtype) * 2 - 1) * max_offset
    mask = torch.rand(batch, taps, oh, ow, generator=g, dtype=dtype)
    weight = torch.randn(c_out, c_in, *k, generator=g, dtype=dtype) / (c_in * taps) ** 0.5
    bias = torch.randn(c_out, generator=g, dtype=dtype)
    return x, offset, mask, weight, bias


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(
    "shape", [(2, 16, 13, 17), (1, 3, 1, 1), (2, 5, 1, 7), (3, 4, 6, 5), (1, 8, 12, 10), (2, 6, 2, 9)]
)
@pytest.mark.parametrize("zero_offset", [False, True])
def test_forward_matches_torchvision(shape, stride, zero_offset):
    x, offset, mask, weight, bias = _case(*shape, stride, zero_offset=zero_offset)
    kw = dict(stride=stride, padding=1)
    expected = deform_conv2d(x, offset, weight, bias, mask=mask, **kw)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, **kw)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # without bias / without mask (DCNv1)
    torch.testing.assert_close(
        modulated_deform_conv2d(x, offset, mask, weight, None, **kw),
        deform_conv2d(x, offset, weight, None, mask=mask, **kw), atol=1e-4, rtol=1e-4,
    )
    torch.testing.assert_close(
        modulated_deform_conv2d(x, offset, None, weight, bias, **kw),
        deform_conv2d(x, offset, weight, bias, **kw), atol=1e-4, rtol=1e-4,
    )


def test_large_offsets_sample_outside_and_zero_offsets_are_a_plain_conv():
    x, offset, mask, weight, bias = _case(2, 16, 13, 17, 1, max_offset=40.0)
    torch.testing.assert_close(
        modulated_deform_conv2d(x, offset, mask, weight, bias),
        deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), atol=1e-4, rtol=1e-4,
    )
    # every sample far outside the image: only the bias is left
    far = torch.full_like(offset, 100.0)
    torch.testing.assert_close(modulated_deform_conv2d(x, far, mask, weight, bias),
                               bias.view(1, -1, 1, 1).expand(2, -1, 13, 17))
    for stride in (1, 2):
        oh, ow = _out_size(13, stride), _out_size(17, stride)
        zero = torch.zeros(2, 18, oh, ow)
        ones = torch.ones(2, 9, oh, ow)
        torch.testing.assert_close(
            modulated_deform_conv2d(x, zero, ones, weight, bias, stride=stride),
            F.conv2d(x, weight, bias, stride=stride, padding=1), atol=1e-5, rtol=1e-5,
        )


def test_integer_and_half_pixel_offsets():
    """Exact integer / half-integer positions (ties of floor, borders at -1 and H)."""
    x, _, mask, weight, bias = _case(2, 6, 7, 9, 1)
    g = torch.Generator().manual_seed(1)
    offset = torch.randint(-4, 5, (2, 18, 7, 9), generator=g).float() * 0.5
    torch.testing.assert_close(
        modulated_deform_conv2d(x, offset, mask, weight, bias),
        deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), atol=1e-4, rtol=1e-4,
    )


def test_offset_layout_dy_then_dx_per_tap():
    """Channel 2k moves tap k down (rows), channel 2k + 1 moves it right (columns)."""
    x = torch.arange(5 * 6, dtype=torch.float32).view(1, 1, 5, 6)
    weight = torch.zeros(1, 1, 3, 3)
    weight[0, 0, 0, 2] = 1.0  # only tap k = 2 (row 0, column 2)
    mask = torch.ones(1, 9, 5, 6)
    offset = torch.zeros(1, 18, 5, 6)
    offset[:, 4] = 1.0  # dy of tap 2: the tap samples (r - 1 + 1, c + 1) = (r, c + 1)
    got = modulated_deform_conv2d(x, offset, mask, weight)
    expected = F.pad(x[..., 1:], (0, 1))  # x[r, c + 1], 0 past the right border
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, deform_conv2d(x, offset, weight, padding=1, mask=mask))


def test_padding_dilation_and_rectangular_kernels():
    for padding, dilation, k, stride in ((0, 1, (3, 3), 1), (2, 2, (3, 3), 1), (1, 1, (1, 3), 2), (2, 1, (5, 3), 2)):
        x, offset, mask, weight, bias = _case(2, 5, 11, 9, stride, padding=padding, dilation=dilation, k=k)
        kw = dict(stride=stride, padding=padding, dilation=dilation)
        torch.testing.assert_close(
            modulated_deform_conv2d(x, offset, mask, weight, bias, **kw),
            deform_conv2d(x, offset, weight, bias, mask=mask, **kw), atol=1e-4, rtol=1e-4,
        )


def test_non_contiguous_inputs():
    x, offset, mask, weight, bias = _case(2, 16, 13, 17, 2)
    big = torch.randn(2, 27 + 18, 7, 9)
    big[:, 5:23] = offset
    big[:, 30:39] = mask
    off_view, mask_view = big[:, 5:23], big[:, 30:39]  # channel slices, as in the fusion blocks
    x_cl = x.contiguous(memory_format=torch.channels_last)
    x_t = x.transpose(2, 3).contiguous().transpose(2, 3)
    w_t = weight.transpose(0, 1).contiguous().transpose(0, 1)
    expected = deform_conv2d(x, offset, weight, bias, stride=2, padding=1, mask=mask)
    for xi in (x_cl, x_t):
        got = modulated_deform_conv2d(xi, off_view, mask_view, w_t, bias, stride=2, padding=1)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    x, offset, mask, weight, bias = _case(2, 16, 13, 17, 1, dtype=dtype)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias)
    assert got.dtype == dtype
    expected = deform_conv2d(x.float(), offset.float(), weight.float(), bias.float(), padding=1, mask=mask.float())
    torch.testing.assert_close(got.float(), expected, atol=2e-2, rtol=2e-2)


def test_float64_and_autocast():
    x, offset, mask, weight, bias = _case(2, 6, 9, 8, 2, dtype=torch.float64)
    expected = deform_conv2d(x, offset, weight, bias, stride=2, padding=1, mask=mask)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride=2)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=1e-12)
    x, offset, mask, weight, bias = _case(2, 16, 13, 17, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # like torchvision on CPU: computed in float32
        got = modulated_deform_conv2d(x, offset, mask, weight, bias)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), atol=1e-4, rtol=1e-4)


def _grads(fn, tensors, grad_out):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    out.backward(grad_out)
    return [out.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("zero_offset", [False, True])
def test_gradients_match_torchvision(stride, zero_offset):
    """Input, offset, mask, weight and bias grads; zero offsets (the state at init) included."""
    x, offset, mask, weight, bias = _case(2, 4, 7, 9, stride, c_out=3, zero_offset=zero_offset, seed=2)
    grad_out = torch.randn(2, 3, _out_size(7, stride), _out_size(9, stride), generator=torch.Generator().manual_seed(3))
    expected = _grads(lambda x, o, m, w, b: deform_conv2d(x, o, w, b, stride=stride, padding=1, mask=m),
                      (x, offset, mask, weight, bias), grad_out)
    got = _grads(lambda x, o, m, w, b: modulated_deform_conv2d(x, o, m, w, b, stride=stride, padding=1),
                 (x, offset, mask, weight, bias), grad_out)
    for name, a, b in zip(("out", "input", "offset", "mask", "weight", "bias"), got, expected):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=lambda m, name=name: f"{name}: {m}")


def test_gradcheck_float64():
    x, offset, mask, weight, bias = _case(1, 2, 4, 5, 1, c_out=2, max_offset=2.0, dtype=torch.float64, seed=4)
    inputs = tuple(t.requires_grad_() for t in (x, offset, mask, weight, bias))
    assert torch.autograd.gradcheck(lambda x, o, m, w, b: modulated_deform_conv2d(x, o, m, w, b), inputs)


def test_auto_dispatch_and_errors():
    x, offset, mask, weight, bias = _case(2, 16, 13, 17, 2)
    torch.testing.assert_close(
        deform_conv2d_auto(x, offset, weight, bias, stride=2, padding=1, mask=mask),
        deform_conv2d(x, offset, weight, bias, stride=2, padding=1, mask=mask), atol=1e-4, rtol=1e-4,
    )
    # two offset groups: not supported by the vectorised version, auto falls back to torchvision
    offset2 = torch.cat([offset, offset.flip(1)], dim=1)
    mask2 = torch.cat([mask, mask.flip(1)], dim=1)
    torch.testing.assert_close(
        deform_conv2d_auto(x, offset2, weight, bias, stride=2, padding=1, mask=mask2),
        deform_conv2d(x, offset2, weight, bias, stride=2, padding=1, mask=mask2),
    )
    with pytest.raises(ValueError):
        modulated_deform_conv2d(x, offset2, mask2, weight, bias, stride=2)
    with pytest.raises(ValueError):  # groups=2 weight
        modulated_deform_conv2d(x, offset, mask, weight[:, :8], bias, stride=2)
    with pytest.raises(ValueError):  # offsets of the wrong size
        modulated_deform_conv2d(x, offset, mask, weight, bias, stride=1)


def test_infinite_offsets_sample_zero_like_torchvision():
    x, offset, mask, weight, bias = _case(2, 4, 5, 6, 1)
    offset[0, 3, 1, 2] = float("inf")
    offset[1, 4, 2, 2] = -float("inf")
    got = modulated_deform_conv2d(x, offset, mask, weight, bias)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, deform_conv2d(x, offset, weight, bias, padding=1, mask=mask), atol=1e-4, rtol=1e-4)
