"""Two augmented views of one still image with instance correspondence (MASA self-supervised training).

The authors turn a still image into a 2-frame "video" holding the same image twice and run their transform
list independently on each copy (``MasaTransformBroadcaster(share_random_params=False)``); the SAM annotation
ids give the correspondence. The transform list, in order (docs/training.md, "Two views",
reference notes section 4):

1. random affine (rotation +-10 deg about the image origin, translation +-0.1, scale U(0.5, 1.5), shear +-2 deg,
   border 114); boxes are projected (4 corners, or the mask when given), clipped to the frame, dropped if empty;
2. MixUp with one mix-in image shared by both views: keep-ratio fit into ``output_size``, jitter U(0.8, 1.6),
   flip p=0.5, random offset, 0.5/0.5 blend; its instances are kept (``ids = -1 - k``: both views see the same
   mix-in, so they correspond too, and never collide with the key image's non-negative ids);
3. YOLOX HSV jitter (hue 5, saturation 30, value 30, OpenCV units, each channel on with p=0.5);
4. large-scale-jitter resize: keep ratio, long side ``output_size * U(0.1, 2.0)``;
5. random crop to at most ``output_size`` (boxes are translated and clipped to the crop);
6. horizontal flip p=0.5;
7. optional photometric set of App. E (motion blur, Gaussian noise, snow, fog, brightness), off by default;
8. pad bottom/right to ``output_size`` with 114;
9. filter: boxes narrower or lower than 1 px (``FilterMatchAnnotations(min_gt_bbox_wh=(1, 1))``).

Library choice: torchvision.transforms.v2 *functional* ops (already a dependency, no new package) do the
geometry of images, ``tv_tensors.BoundingBoxes`` and ``tv_tensors.Mask`` together (corner projection for the
affine, nearest-neighbour masks, exact box arithmetic for resize/crop/flip/pad). We draw every random parameter
ourselves from one ``numpy.random.Generator``: v2's random transform classes draw from torch's *global* RNG (no
per-call generator, so no seed-per-sample determinism), and none of them expresses MMDetection's exact
parameters (affine about the origin, the MixUp with boxes of a second image, YOLOX HSV). Boxes are built with
``clamping_mode=None`` so that we clip exactly where the authors do. albumentations would add a dependency
and, like v2's classes, own the random draws; its only extra here would be fog/snow, which are a few lines of
numpy below. HSV jitter and the photometric set use OpenCV (already a dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

__all__ = ["View", "ViewConfig", "make_view", "make_view_pair"]

_PAD = 114


@dataclass(frozen=True)
class ViewConfig:
    """Every parameter of the view pipeline; the defaults are the authors' (``configs/datasets/masa_dataset.py``)."""

    output_size: tuple[int, int] = (1024, 1024)  # (h, w): MixUp canvas, resize scale, crop size and pad size
    pad_value: int = _PAD
    # 1. SeqRandomAffine (mmdet RandomAffine defaults)
    max_rotate_degree: float = 10.0
    max_translate_ratio: float = 0.1
    scaling_ratio_range: tuple[float, float] = (0.5, 1.5)
    max_shear_degree: float = 2.0
    # 2. SeqMixUp
    mixup: bool = True
    mixup_ratio_range: tuple[float, float] = (0.8, 1.6)
    mixup_flip_prob: float = 0.5
    mixup_alpha: float = 0.5  # weight of the mix-in image in the blend
    # 3. YOLOXHSVRandomAug
    hue_delta: int = 5
    saturation_delta: int = 30
    value_delta: int = 30
    # 4. RandomResize(scale=output_size, ratio_range, keep_ratio=True)
    resize_ratio_range: tuple[float, float] = (0.1, 2.0)
    # 5. RandomCrop(crop_size=output_size): offsets are redrawn up to this many times until the crop holds a box
    #    (the authors reject the whole sample, `allow_negative_crop=False`; a transform cannot refetch one)
    crop_attempts: int = 10
    # 6. RandomFlip
    flip_prob: float = 0.5
    # 7. App. E photometric set (not in the authors' default config); each op applied with `photometric_prob`
    photometric: bool = False
    photometric_prob: float = 0.3
    motion_blur_kernel: tuple[int, int] = (3, 15)
    noise_sigma: tuple[float, float] = (5.0, 25.0)
    fog_strength: tuple[float, float] = (0.2, 0.5)
    snow_density: tuple[float, float] = (0.002, 0.01)
    brightness_factor: tuple[float, float] = (0.6, 1.4)
    photometric_ops: tuple[str, ...] = ("motion_blur", "noise", "snow", "fog", "brightness")
    # 9. FilterMatchAnnotations(min_gt_bbox_wh=(1, 1)); plus an optional visible-area filter (authors: none)
    min_box_wh: tuple[float, float] = (1.0, 1.0)
    min_visible_fraction: float = 0.0  # drop boxes keeping less than this fraction of their (box) area


@dataclass
class View:
    """One augmented view: ``image`` uint8[H, W, 3] RGB, ``boxes`` float32[N, 4] xyxy px, ``ids`` int64[N]."""

    image: np.ndarray
    boxes: np.ndarray
    ids: np.ndarray
    masks: np.ndarray | None = None  # bool[N, H, W]


Generator = np.random.Generator | torch.Generator


def _numpy_rng(rng: Generator) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng).item())
        return np.random.default_rng(seed)
    raise TypeError(f"rng: got {type(rng).__name__}; expected numpy.random.Generator or torch.Generator")


class _State:
    """Image, boxes, masks and ids as tv_tensors, plus each box's fraction of area still visible."""

    def __init__(self, image: torch.Tensor, boxes: torch.Tensor, ids: np.ndarray, masks: torch.Tensor | None):
        self.image = image  # tv_tensors.Image uint8[3, H, W]
        self.boxes = boxes  # tv_tensors.BoundingBoxes float32[N, 4], clamping_mode=None
        self.ids = ids
        self.masks = masks  # tv_tensors.Mask bool[N, H, W] or None
        self.visible = np.ones(len(ids), dtype=np.float64)

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[-2]), int(self.image.shape[-1])

    def apply(self, fn, **kwargs) -> None:
        self.image = fn(self.image, **kwargs)
        self.boxes = fn(self.boxes, **kwargs)
        if self.masks is not None:
            if "fill" in kwargs:
                kwargs = {**kwargs, "fill": 0}  # masks pad with background
            if fn is F.resize:  # pixel-centre aligned, like the antialiased image resize
                kwargs = {**kwargs, "interpolation": F.InterpolationMode.NEAREST_EXACT}
            self.masks = fn(self.masks, **kwargs)

    def keep(self, keep: np.ndarray) -> None:
        idx = torch.from_numpy(np.flatnonzero(keep))
        self.boxes = tv_tensors.wrap(self.boxes[idx], like=self.boxes)
        self.ids = self.ids[keep]
        self.visible = self.visible[keep]
        if self.masks is not None:
            self.masks = tv_tensors.wrap(self.masks[idx], like=self.masks)

    def clip(self, boxes_from_masks: bool = False) -> None:
        """Clip boxes to the frame (or re-derive them from the masks), track lost area, drop empty boxes."""
        h, w = self.hw
        b = self.boxes.as_subclass(torch.Tensor).numpy().astype(np.float64)
        area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
        if boxes_from_masks and self.masks is not None:
            c = _mask_extents(self.masks.as_subclass(torch.Tensor).numpy())
        else:
            c = np.stack([b[:, 0].clip(0, w), b[:, 1].clip(0, h), b[:, 2].clip(0, w), b[:, 3].clip(0, h)], axis=1)
        c_area = np.clip(c[:, 2] - c[:, 0], 0, None) * np.clip(c[:, 3] - c[:, 1], 0, None)
        self.visible = self.visible * np.where(area > 0, np.minimum(c_area / np.maximum(area, 1e-12), 1.0), 0.0)
        self.boxes = tv_tensors.wrap(torch.from_numpy(c.astype(np.float32)), like=self.boxes)
        self.keep(c_area > 0)


def _mask_extents(masks: np.ndarray) -> np.ndarray:
    out = np.zeros((len(masks), 4), dtype=np.float64)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(axis=1))
        xs = np.flatnonzero(m.any(axis=0))
        if len(xs):
            out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def _to_state(image, boxes, ids, masks) -> _State:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: got {image.dtype}{list(image.shape)}; expected uint8[H, W, 3] RGB")
    h, w = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(ids) != len(boxes):
        raise ValueError(f"ids: got {len(ids)} ids for {len(boxes)} boxes; expected one id per box")
    tv_masks = None
    if masks is not None:
        masks = np.asarray(masks, dtype=bool)
        if masks.shape != (len(boxes), h, w):
            raise ValueError(f"masks: got shape {list(masks.shape)}; expected bool[{len(boxes)}, {h}, {w}]")
        tv_masks = tv_tensors.Mask(torch.from_numpy(masks.copy()))
    return _State(
        tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()),
        tv_tensors.BoundingBoxes(torch.from_numpy(boxes.copy()), format="XYXY", canvas_size=(h, w), clamping_mode=None),
        ids.copy(),
        tv_masks,
    )


def _random_affine(s: _State, rng: np.random.Generator, cfg: ViewConfig) -> None:
    h, w = s.hw
    angle = rng.uniform(-cfg.max_rotate_degree, cfg.max_rotate_degree)
    scale = rng.uniform(*cfg.scaling_ratio_range)
    shear = [rng.uniform(-cfg.max_shear_degree, cfg.max_shear_degree) for _ in range(2)]
    translate = [rng.uniform(-cfg.max_translate_ratio, cfg.max_translate_ratio) * w,
                 rng.uniform(-cfg.max_translate_ratio, cfg.max_translate_ratio) * h]
    fill = [float(cfg.pad_value)] * 3
    s.image = F.affine(s.image, angle=angle, translate=translate, scale=scale, shear=shear, center=[0.0, 0.0],
                       interpolation=F.InterpolationMode.BILINEAR, fill=fill)
    s.boxes = F.affine(s.boxes, angle=angle, translate=translate, scale=scale, shear=shear, center=[0.0, 0.0])
    if s.masks is not None:
        s.masks = F.affine(s.masks, angle=angle, translate=translate, scale=scale, shear=shear, center=[0.0, 0.0])
    s.clip(boxes_from_masks=True)  # bbox_clip_border=True; with masks the box is the warped mask's extent


def _mixup(s: _State, mixin, rng: np.random.Generator, cfg: ViewConfig) -> None:
    image, boxes = mixin[0], mixin[1]
    m_masks = mixin[2] if len(mixin) > 2 else None
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if s.masks is not None and m_masks is None:  # the key image has masks: mix-in instances get box-shaped ones
        mh, mw = np.asarray(image).shape[:2]
        m_masks = np.zeros((len(boxes), mh, mw), dtype=bool)
        for k, (x1, y1, x2, y2) in enumerate(np.round(boxes).astype(int)):
            m_masks[k, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    m = _to_state(image, boxes, -1 - np.arange(len(boxes), dtype=np.int64), m_masks if s.masks is not None else None)
    oh, ow = cfg.output_size
    th, tw = s.hw
    mh, mw = m.hw
    jit = rng.uniform(*cfg.mixup_ratio_range)
    flip = rng.uniform() < cfg.mixup_flip_prob
    ratio = min(oh / mh, ow / mw) * jit  # keep-ratio fit into output_size, then the jitter
    m.apply(F.resize, size=[max(1, int(mh * ratio)), max(1, int(mw * ratio))], antialias=True)
    ch, cw = max(1, int(oh * jit)), max(1, int(ow * jit))  # the jittered canvas the image sits in (top-left)
    rh, rw = m.hw
    m.apply(F.pad, padding=[0, 0, max(cw - rw, 0), max(ch - rh, 0)], fill=cfg.pad_value)
    m.apply(F.crop, top=0, left=0, height=ch, width=cw)
    if flip:
        m.apply(F.horizontal_flip)
    m.apply(F.pad, padding=[0, 0, max(tw - cw, 0), max(th - ch, 0)], fill=cfg.pad_value)
    ph, pw = m.hw
    y0 = int(rng.integers(0, ph - th + 1))
    x0 = int(rng.integers(0, pw - tw + 1))
    m.apply(F.crop, top=y0, left=x0, height=th, width=tw)
    m.clip(boxes_from_masks=m.masks is not None)  # drops the mix-in boxes outside the key frame
    blended = (1 - cfg.mixup_alpha) * s.image.float() + cfg.mixup_alpha * m.image.float()
    s.image = tv_tensors.wrap(blended.round().clamp(0, 255).to(torch.uint8), like=s.image)
    s.boxes = tv_tensors.wrap(torch.cat([s.boxes.as_subclass(torch.Tensor), m.boxes.as_subclass(torch.Tensor)]),
                              like=s.boxes)
    s.ids = np.concatenate([s.ids, m.ids])
    s.visible = np.concatenate([s.visible, m.visible])
    if s.masks is not None:
        s.masks = tv_tensors.wrap(torch.cat([s.masks.as_subclass(torch.Tensor), m.masks.as_subclass(torch.Tensor)]),
                                  like=s.masks)


def _hsv(img: np.ndarray, rng: np.random.Generator, cfg: ViewConfig) -> np.ndarray:
    gains = rng.uniform(-1, 1, 3) * [cfg.hue_delta, cfg.saturation_delta, cfg.value_delta]
    gains = (gains * rng.integers(0, 2, 3)).astype(np.int16)  # each channel on with p=0.5 (YOLOX)
    if not gains.any():
        return img  # skip the lossy RGB -> HSV -> RGB round trip
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _photometric(img: np.ndarray, rng: np.random.Generator, cfg: ViewConfig) -> np.ndarray:
    """App. E: motion blur, Gaussian noise, snow, fog, brightness; each with ``photometric_prob``."""
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    for op in cfg.photometric_ops:
        if rng.uniform() >= cfg.photometric_prob:
            continue
        if op == "motion_blur":
            k = int(rng.integers(cfg.motion_blur_kernel[0], cfg.motion_blur_kernel[1] + 1)) | 1
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0
            rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (k, k))
            out = cv2.filter2D(out, -1, kernel / max(kernel.sum(), 1e-6))
        elif op == "noise":
            out = out + rng.normal(0, rng.uniform(*cfg.noise_sigma), out.shape).astype(np.float32)
        elif op == "snow":
            flakes = (rng.uniform(size=(h, w)) < rng.uniform(*cfg.snow_density)).astype(np.float32)
            flakes = np.clip(cv2.GaussianBlur(cv2.dilate(flakes, np.ones((2, 2), np.uint8)), (3, 3), 0) * 2, 0, 1)
            out = out * (1 - flakes[..., None]) + 255.0 * flakes[..., None]
            out = out * 0.85 + 255 * 0.15 * rng.uniform(0.3, 1.0)  # snowy haze
        elif op == "fog":
            coarse = rng.uniform(size=(max(2, h // 64), max(2, w // 64))).astype(np.float32)
            field_ = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
            alpha = (rng.uniform(*cfg.fog_strength) * (0.5 + 0.5 * field_))[..., None]
            out = out * (1 - alpha) + 230.0 * alpha
        elif op == "brightness":
            out = out * rng.uniform(*cfg.brightness_factor)
        else:
            raise ValueError(f"photometric_ops: got {op!r}; expected motion_blur, noise, snow, fog or brightness")
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _set_pixels(s: _State, img: np.ndarray) -> None:
    s.image = tv_tensors.wrap(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous(), like=s.image)


def make_view(image, boxes, ids, *, masks=None, mixin=None, rng: Generator, config: ViewConfig = ViewConfig()) -> View:
    """One independent random draw of the authors' transform list (module docstring).

    ``image`` uint8[H, W, 3] RGB, ``boxes`` float32[N, 4] xyxy px, ``ids`` int64[N]; ``masks`` bool[N, H, W] or None;
    ``mixin`` ``(image, boxes)`` or ``(image, boxes, masks)`` of a second image (its instance k gets id ``-1 - k``).
    Returns a ``View`` of ``config.output_size``; boxes are clipped to the image content and filtered.
    """
    cfg = config
    g = _numpy_rng(rng)
    s = _to_state(image, boxes, ids, masks)
    if mixin is not None and cfg.mixup and np.any(s.ids < 0):
        raise ValueError("ids: got negative ids with a mix-in image; expected ids >= 0 (mix-in instances use -1 - k)")
    s.clip()  # boxes outside the input frame never take part
    _random_affine(s, g, cfg)
    if mixin is not None and cfg.mixup:
        _mixup(s, mixin, g, cfg)
    _set_pixels(s, _hsv(s.image.permute(1, 2, 0).numpy(), g, cfg))
    h, w = s.hw
    oh, ow = cfg.output_size
    r = g.uniform(*cfg.resize_ratio_range)
    scale = min(oh * r / h, ow * r / w)  # keep ratio inside (oh * r, ow * r)
    s.apply(F.resize, size=[max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))], antialias=True)
    h, w = s.hw
    chh, cww = min(oh, h), min(ow, w)
    b = s.boxes.as_subclass(torch.Tensor).numpy()
    for _ in range(max(1, cfg.crop_attempts)):
        y0, x0 = int(g.integers(0, h - chh + 1)), int(g.integers(0, w - cww + 1))
        inside = (b[:, 2] > x0) & (b[:, 0] < x0 + cww) & (b[:, 3] > y0) & (b[:, 1] < y0 + chh)
        if len(b) == 0 or inside.any():
            break
    s.apply(F.crop, top=y0, left=x0, height=chh, width=cww)
    s.clip(boxes_from_masks=s.masks is not None)
    if g.uniform() < cfg.flip_prob:
        s.apply(F.horizontal_flip)
    if cfg.photometric:
        _set_pixels(s, _photometric(s.image.permute(1, 2, 0).numpy(), g, cfg))
    h, w = s.hw
    s.apply(F.pad, padding=[0, 0, ow - w, oh - h], fill=cfg.pad_value)
    bx = s.boxes.as_subclass(torch.Tensor).numpy()
    keep = ((bx[:, 2] - bx[:, 0]) >= cfg.min_box_wh[0]) & ((bx[:, 3] - bx[:, 1]) >= cfg.min_box_wh[1])
    keep &= s.visible >= cfg.min_visible_fraction
    s.keep(keep)
    return View(
        image=np.ascontiguousarray(s.image.permute(1, 2, 0).numpy()),
        boxes=s.boxes.as_subclass(torch.Tensor).numpy().astype(np.float32).reshape(-1, 4),
        ids=s.ids.astype(np.int64),
        masks=None if s.masks is None else s.masks.as_subclass(torch.Tensor).numpy().astype(bool),
    )


def make_view_pair(image, boxes, ids, *, masks=None, mixin=None, rng: Generator,
                   config: ViewConfig = ViewConfig()) -> tuple[View, View]:
    """Key and reference views: independent draws of `make_view` sharing the same mix-in image (same ids)."""
    g = _numpy_rng(rng)
    return tuple(make_view(image, boxes, ids, masks=masks, mixin=mixin, rng=g, config=config) for _ in range(2))
