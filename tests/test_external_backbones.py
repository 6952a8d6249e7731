"""Backbones from timm and Hugging Face CLIP towers, built offline from small random configs."""

from __future__ import annotations

import warnings

import pytest
import torch

from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from geoguess_utils.models import backbones, external_backbones, multiview

pytest.importorskip("timm")
pytest.importorskip("transformers")

TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 16,
}


@pytest.fixture
def offline(monkeypatch):
    """The Hugging Face hub in offline mode: no network attempts, no retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def tiny_clip(monkeypatch):
    """A tiny CLIP vision architecture known under a made-up hub name."""
    monkeypatch.setitem(external_backbones.CLIP_VISION_ARCHITECTURES, "tests/tiny-clip", TINY_CLIP)
    return "hf/tests/tiny-clip"


def test_timm_convnet_by_name():
    torch.manual_seed(0)
    backbone = backbones.build_backbone("timm/resnet10t", pretrained=False).eval()
    assert backbone.num_features == 512
    with torch.no_grad():
        assert backbone(torch.randn(2, 3, 48, 48)).shape == (2, 512)
    assert backbones.backbone_normalization("timm/resnet10t") == (IMAGENET_MEAN, IMAGENET_STD)


def test_timm_vision_transformer_takes_any_image_size_and_brings_its_normalisation():
    backbone = backbones.build_backbone("timm/test_vit", pretrained=False).eval()
    with torch.no_grad():
        for side in (48, 64):
            assert backbone(torch.randn(1, 3, side, side)).shape == (1, backbone.num_features)
    assert backbones.backbone_normalization("timm/test_vit") == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_unknown_timm_model_is_a_config_error():
    with pytest.raises(ConfigError, match="timm has no model 'no_such_net'"):
        backbones.build_backbone("timm/no_such_net", pretrained=False)


def test_offline_timm_weights_give_the_ways_on(offline):
    with pytest.raises(GeoguessError, match="pretrained=False") as info:
        backbones.build_backbone("timm/resnet10t", pretrained=True)
    message = str(info.value)
    assert "'timm/resnet10t'" in message and "HF_HOME" in message and "efficientnet_lite0" in message
    assert "snapshot_download('timm/resnet10t" in message


def test_tiny_clip_tower_through_the_registry(tiny_clip):
    torch.manual_seed(1)
    backbone = backbones.build_backbone(tiny_clip, pretrained=False).eval()
    assert isinstance(backbone.body, external_backbones.ClipVisionBody)
    assert backbone.num_features == 32
    with torch.no_grad():
        for side in (32, 48):  # position embeddings are interpolated for other sizes
            assert backbone(torch.randn(2, 3, side, side)).shape == (2, 32)
    projected = backbones.build_backbone(tiny_clip + ":projected", pretrained=False).eval()
    assert projected.num_features == 16
    with torch.no_grad():
        assert projected(torch.randn(2, 3, 32, 32)).shape == (2, 16)
    assert backbones.backbone_normalization(tiny_clip) == (external_backbones.CLIP_MEAN, external_backbones.CLIP_STD)


def test_rebuilt_clip_tower_loads_the_state_of_the_first(tiny_clip):
    """What loading a checkpoint does: rebuild with pretrained=False, then load the weights."""
    first = backbones.build_backbone(tiny_clip, pretrained=False).eval()
    second = backbones.build_backbone(tiny_clip, pretrained=False).eval()
    second.load_state_dict(first.state_dict())
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(second(images), first(images))


def test_multiview_net_with_a_clip_tower_and_attention(tiny_clip):
    net = multiview.MultiViewNet(tiny_clip, num_outputs=3, pretrained=False, pooling="attention", attention_dim=16)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 4, 3, 32, 32)).shape == (2, 3)


def test_known_clip_model_builds_its_real_architecture_offline(offline):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known model needs no fallback note
        backbone = backbones.build_backbone("hf/openai/clip-vit-base-patch32", pretrained=False)
    config = backbone.body.model.config
    assert (config.hidden_size, config.patch_size, config.num_hidden_layers, config.image_size) == (768, 32, 12, 224)
    assert backbone.num_features == 768


def test_streetclip_is_known_as_a_vit_l14_at_336_px():
    from transformers import CLIPVisionConfig

    config = CLIPVisionConfig(**external_backbones.CLIP_VISION_ARCHITECTURES["geolocal/StreetCLIP"])
    assert (config.hidden_size, config.patch_size, config.num_hidden_layers, config.image_size) == (1024, 14, 24, 336)
    assert backbones.backbone_normalization("hf/geolocal/StreetCLIP")[0] == external_backbones.CLIP_MEAN


def test_unknown_clip_model_offline_falls_back_to_the_default_with_a_note(offline):
    with pytest.warns(UserWarning, match="default CLIP ViT-B/32"):
        backbone = backbones.build_backbone("hf/someone/unknown-clip", pretrained=False)
    assert backbone.num_features == 768


def test_offline_clip_weights_give_the_ways_on(offline):
    with pytest.raises(GeoguessError, match="pretrained=False") as info:
        backbones.build_backbone("hf/geolocal/StreetCLIP", pretrained=True)
    assert "snapshot_download('geolocal/StreetCLIP')" in str(info.value)


@pytest.mark.parametrize("name", ["hf/StreetCLIP", "hf/a/b/c", "hf//x"])
def test_malformed_hub_names_are_config_errors(name):
    with pytest.raises(ConfigError, match="hf/<org>/<model>"):
        backbones.backbone_spec(name)


def test_unknown_names_mention_the_prefixes():
    with pytest.raises(ConfigError, match=r"timm/<model>.*hf/<org>/<model>"):
        backbones.backbone_spec("no_such_backbone")


def test_a_resolver_is_a_plug_in(monkeypatch):
    def toy(name: str) -> backbones.BackboneSpec | None:
        if not name.startswith("toy/"):
            return None
        width = int(name.split("/")[1])
        body = torch.nn.Sequential(torch.nn.Conv2d(3, width, 1), torch.nn.AdaptiveAvgPool2d(1))
        return backbones.BackboneSpec(name, lambda pretrained: (body, width))

    monkeypatch.setattr(backbones, "RESOLVERS", [])
    assert backbones.register_resolver(toy) is toy
    backbones.register_resolver(toy)  # registering twice keeps one
    assert len(backbones.RESOLVERS) == 1 and backbones.RESOLVERS[0] is toy
    backbone = backbones.build_backbone("toy/5", pretrained=False)
    assert backbone.num_features == 5
    assert backbone(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    assert backbones.backbone_resolvers()[-1] is toy


def test_fit_save_and_load_with_a_clip_tower_and_view_attention(tiny_clip, offline, tmp_path):
    import pytorch_lightning as pl
    from _training_helpers import make_dataset

    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, CellSettings
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.loading import load_task

    root = make_dataset(tmp_path / "root", 16, size=32, seed=5)
    dm = GeoDataModule(
        roots=[str(root)],
        image_size=32,
        batch_size=8,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
    )
    task = ClassificationTask(backbone=tiny_clip, pretrained=False, pooling="attention", freeze_backbone_epochs=0)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=dm)
    assert dm.normalization == (external_backbones.CLIP_MEAN, external_backbones.CLIP_STD)
    path = tmp_path / "clip.ckpt"
    trainer.save_checkpoint(path)
    assert load_checkpoint(path)["geoguess"]["normalization"]["mean"] == list(external_backbones.CLIP_MEAN)
    loaded = load_task(path).eval()
    assert loaded.hparams.backbone == tiny_clip and loaded.hparams.pooling == "attention"
    images = next(iter(dm.val_dataloader()))["images"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), task.eval()(images))
