"""Backbones by name, offline behaviour, the bundled ImageNet weights, and the multi-view net."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.models import backbones, multiview

IMAGENET_MILITARY_UNIFORM = 652
IMAGENET_CLOTHING = {
    399,
    400,
    457,
    465,
    578,
    610,
    617,
    652,
    667,
    689,
    834,
    841,
    869,
    887,
    906,
}  # gowns, ties, suits, uniforms


def _imagenet_tensor(image: Image.Image, size: int = 224) -> torch.Tensor:
    """Resize the short side, centre-crop, scale to [0, 1] and ImageNet-normalise: (1, 3, size, size)."""
    scale = size / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return ((x - mean) / std)[None]


@pytest.fixture(scope="module")
def grace_hopper() -> torch.Tensor:
    """Matplotlib's sample portrait of Grace Hopper in US Navy uniform, ImageNet-normalised."""
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        return _imagenet_tensor(image.convert("RGB"))


def test_bundled_lite0_weights_recognise_a_navy_uniform(grace_hopper):
    classifier = backbones.imagenet_classifier("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        probs = classifier(grace_hopper).softmax(dim=1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == IMAGENET_MILITARY_UNIFORM
    assert set(top5) <= IMAGENET_CLOTHING
    assert probs[IMAGENET_MILITARY_UNIFORM] > 0.2
    # a mirrored photo shows the same thing
    with torch.no_grad():
        mirrored = classifier(grace_hopper.flip(dims=[3])).softmax(dim=1)[0]
    assert mirrored.argmax().item() == IMAGENET_MILITARY_UNIFORM


def test_untrained_lite0_does_not_recognise_it(grace_hopper):
    torch.manual_seed(0)
    classifier = backbones.imagenet_classifier("efficientnet_lite0", pretrained=False).eval()
    with torch.no_grad():
        probs = classifier(grace_hopper).softmax(dim=1)[0]
    assert probs.max() < 0.05


def test_pretrained_backbone_features_match_the_classifier(grace_hopper):
    classifier = backbones.imagenet_classifier("efficientnet_lite0", pretrained=True).eval()
    backbone = backbones.build_backbone("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        features = backbone(grace_hopper)
        logits = classifier.network._fc(features)
        expected = classifier(grace_hopper)
    assert features.shape == (1, backbone.num_features)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "efficientnet_b0", "mobilenet_v3_small"])
def test_backbones_by_name_without_weights(name):
    backbone = backbones.build_backbone(name, pretrained=False).eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, backbone.num_features)
    assert name in backbones.list_backbones()


def test_unknown_backbone_is_refused():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet9000'"):
        backbones.build_backbone("resnet9000", pretrained=False)


def test_offline_download_failure_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(GeoguessError) as info:
        backbones.build_backbone("mobilenet_v3_small", pretrained=True)
    message = str(info.value)
    assert "pretrained=False" in message
    assert str(tmp_path / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth") in message
    assert "efficientnet_lite0" in message


def test_weights_placed_in_the_hub_cache_are_used_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    torch.manual_seed(3)
    reference = backbones.imagenet_classifier("mobilenet_v3_small", pretrained=False)
    cached = Path(tmp_path) / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth"
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    loaded = backbones.imagenet_classifier("mobilenet_v3_small", pretrained=True)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


@pytest.mark.parametrize("pooling, width", [("concat", 4 * 1280), ("mean", 1280)])
def test_multiview_shapes(pooling, width):
    net = multiview.MultiViewNet("efficientnet_lite0", num_outputs=7, pretrained=False, pooling=pooling).eval()
    images = torch.randn(3, 4, 3, 48, 48)
    with torch.no_grad():
        assert net.features(images).shape == (3, width)
        assert net(images).shape == (3, 7)


def test_views_are_folded_into_the_batch_and_concatenated_in_heading_order():
    torch.manual_seed(1)
    net = multiview.MultiViewNet("resnet18", num_outputs=2, pretrained=False).eval()
    images = torch.randn(2, 4, 3, 40, 40)
    with torch.no_grad():
        feats = net.features(images)
        for b in range(2):
            per_view = [net.backbone(images[b, v : v + 1])[0] for v in range(4)]
            torch.testing.assert_close(feats[b], torch.cat(per_view), rtol=1e-4, atol=1e-5)
        swapped = images[:, [1, 0, 2, 3]]
        assert not torch.allclose(net(swapped), net(images))


def test_mean_pooling_ignores_view_order():
    torch.manual_seed(2)
    net = multiview.MultiViewNet("resnet18", num_outputs=3, pretrained=False, pooling="mean").eval()
    images = torch.randn(2, 4, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(net(images[:, [3, 1, 0, 2]]), net(images), rtol=1e-4, atol=1e-5)


def test_multiview_checks_its_input():
    net = multiview.MultiViewNet("efficientnet_lite0", num_outputs=2, pretrained=False)
    with pytest.raises(ValueError, match=r"\(B, 4, 3, H, W\)"):
        net(torch.randn(2, 3, 3, 32, 32))
    with pytest.raises(ConfigError, match="pooling"):
        multiview.MultiViewNet("efficientnet_lite0", pooling="max", pretrained=False)  # type: ignore[arg-type]


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(4)
    net = multiview.MultiViewNet("resnet18", num_outputs=2, pretrained=False).eval()
    fast = multiview.MultiViewNet("resnet18", num_outputs=2, pretrained=False, channels_last=True).eval()
    fast.load_state_dict(net.state_dict())
    fast.to(memory_format=torch.channels_last)
    images = torch.randn(2, 4, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), net(images), rtol=1e-4, atol=1e-4)


def test_lite0_stride1_convolutions_pad_inside_with_identical_outputs():
    from efficientnet_lite_pytorch import EfficientNet
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    from geoguess_utils.models.efficientnet_lite import _lite0_network

    torch.manual_seed(0)
    fast = _lite0_network(pretrained=False).eval()
    reference = EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    assert list(reference.state_dict()) == list(fast.state_dict())
    reference.load_state_dict(fast.state_dict())
    left = [m for m in fast.modules() if isinstance(m, Conv2dDynamicSamePadding)]
    assert left and all(tuple(m.stride) != (1, 1) for m in left)  # only strided ones keep dynamic padding
    with torch.no_grad():
        for size in (64, 57):
            images = torch.randn(2, 3, size, size)
            torch.testing.assert_close(fast(images), reference(images), rtol=1e-4, atol=1e-4)
