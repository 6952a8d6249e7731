"""Attention fusion of the four views: shapes, heading order, training, state dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from geoguess_utils.errors import ConfigError
from geoguess_utils.models import multiview
from geoguess_utils.models.view_attention import ViewAttention


def test_attention_shapes_on_images_and_cached_features():
    torch.manual_seed(0)
    net = multiview.MultiViewNet("resnet18", num_outputs=5, pretrained=False, pooling="attention", attention_dim=32)
    net.eval()
    images = torch.randn(2, 4, 3, 40, 40)
    with torch.no_grad():
        per_view = net.view_features(images)
        assert per_view.shape == (2, 4, 512)
        assert net.features(images).shape == (2, 32)
        assert net.fused_width == 32
        out = net(images)
        assert out.shape == (2, 5)
        torch.testing.assert_close(net.from_view_features(per_view), out, rtol=1e-4, atol=1e-5)


def test_attention_output_depends_on_the_view_order_through_the_heading_embedding():
    torch.manual_seed(1)
    fusion = ViewAttention(in_features=24, num_views=4, d_model=16, num_heads=2, num_layers=1).eval()
    features = torch.randn(3, 4, 24)
    rotated = features[:, [1, 2, 3, 0]]
    with torch.no_grad():
        assert not torch.allclose(fusion(rotated), fusion(features), atol=1e-4)
        fusion.heading.zero_()
        # Without the heading embedding, mean-pooled self-attention cannot tell the views apart.
        torch.testing.assert_close(fusion(rotated), fusion(features), rtol=1e-4, atol=1e-5)


def test_attention_parameters_belong_to_the_head_side():
    net = multiview.MultiViewNet("resnet18", num_outputs=3, pretrained=False, pooling="attention", attention_dim=16)
    backbone_ids = {id(p) for p in net.backbone.parameters()}
    fusion_ids = {id(p) for p in net.fusion.parameters()}
    assert fusion_ids and not fusion_ids & backbone_ids
    assert any(name.startswith("fusion.heading") for name, _ in net.named_parameters())


def test_attention_fusion_and_head_learn_from_cached_features():
    torch.manual_seed(2)
    net = multiview.MultiViewNet(
        "efficientnet_lite0", num_outputs=2, pretrained=False, pooling="attention", attention_dim=32
    )
    for parameter in net.backbone.parameters():
        parameter.requires_grad_(False)
    # The target depends on which heading holds which feature: only a fusion that sees the order can fit it.
    features = torch.randn(64, 4, net.backbone.num_features)
    target = torch.stack([features[:, 0, :8].sum(1) - features[:, 2, :8].sum(1), features[:, 1, :8].sum(1)], dim=1)
    trainable = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=3e-3)
    heading_before = net.fusion.heading.detach().clone()
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(net.from_view_features(features), target)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.allclose(net.fusion.heading, heading_before)


def test_concat_state_dict_keys_are_unchanged():
    net = multiview.MultiViewNet("efficientnet_lite0", num_outputs=3, pretrained=False)
    assert not hasattr(net, "fusion")
    assert not any(key.startswith("fusion.") for key in net.state_dict())
    assert {key for key in net.state_dict() if key.startswith("head.")} == {"head.1.weight", "head.1.bias"}
    assert net.fused_width == 4 * 1280


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_model": 30, "num_heads": 4}, "divisible"),
        ({"num_layers": 0}, "positive"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_attention_rejects_bad_sizes(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ViewAttention(in_features=8, **kwargs)


def test_attention_checks_its_input():
    fusion = ViewAttention(in_features=8, d_model=8, num_heads=2, num_layers=1)
    with pytest.raises(ValueError, match=r"\(B, 4, F\)"):
        fusion(torch.randn(2, 3, 8))


def test_tasks_pass_attention_pooling_through(croatia_points):
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.experimental.knn import KNNTask

    lat, lon = croatia_points
    context = GeoContext.fit(lat[:400], lon[:400], spacing_deg=0.5)
    task = ClassificationTask(backbone="efficientnet_lite0", pretrained=False, pooling="attention")
    task.configure_context(context, image_size=32)
    assert isinstance(task.net.fusion, ViewAttention)
    with torch.no_grad():
        task.net.head[-1].weight.normal_(std=0.01)
    batch = {
        "view_features": torch.randn(3, 4, 1280).half(),
        "class_index": torch.as_tensor(context.assign(lat[400:403], lon[400:403])),
        "latlon": torch.as_tensor(np.column_stack([lat[400:403], lon[400:403]])),
    }
    outputs = task.batch_outputs(batch)
    assert outputs.shape == (3, context.num_classes)
    task.loss(outputs, batch).backward()
    assert task.net.fusion.heading.grad is not None and torch.count_nonzero(task.net.fusion.heading.grad) > 0

    knn = KNNTask(backbone="efficientnet_lite0", pretrained=False, pooling="attention")
    knn.configure_context(context, image_size=32)
    assert knn.bank_features.shape == (int(context.class_table["n_train"].sum()), 256)
