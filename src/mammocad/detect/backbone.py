"""GroupNorm backbones with a feature pyramid, built from scratch for two-channel input.

BatchNorm statistics from batches of one or two 1024×832 images are noise, and no pretrained
weights (whose frozen BatchNorm would sidestep that) can be downloaded here, so every
normalisation layer is GroupNorm (Wu & He, "Group Normalization", ECCV 2018), in the FPN too.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import mobilenet_v3_large, resnet
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from mammocad.detect.config import DetectorConfig


def group_norm_factory(groups: int) -> Callable[..., nn.Module]:
    """A ``norm_layer(num_channels)`` building GroupNorm with at most ``groups`` groups.

    MobileNetV3 has layers of 16, 24, 40, 72… channels, so the group count is lowered to the
    largest divisor of the channel count not above ``groups``.
    """

    def make(num_channels: int, **_: object) -> nn.Module:
        count = max(g for g in range(1, min(groups, num_channels) + 1) if num_channels % g == 0)
        return nn.GroupNorm(count, num_channels)

    return make


def build_backbone(config: DetectorConfig) -> BackboneWithFPN:
    """Backbone + FPN giving ``len(config.feature_strides)`` maps of ``fpn_channels`` channels.

    Weights are random (``weights=None``): nothing pretrained is available or wanted here.
    """
    norm = group_norm_factory(config.norm_groups)
    if config.backbone == "mobilenet_v3_large":
        body, return_layers, in_channels = _mobilenet(config, norm)
    else:
        body, return_layers, in_channels = _resnet(config, norm)
    return BackboneWithFPN(
        body,
        return_layers=return_layers,
        in_channels_list=in_channels,
        out_channels=config.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        norm_layer=norm,
    )


def _resnet(
    config: DetectorConfig, norm: Callable[..., nn.Module]
) -> tuple[nn.Module, dict[str, str], list[int]]:
    builder = getattr(resnet, config.backbone)
    # zero-initialised last norm of each residual block: every block starts as the identity,
    # which keeps training from scratch stable (Goyal et al., 2017)
    model: resnet.ResNet = builder(weights=None, norm_layer=norm, zero_init_residual=True)
    model.conv1 = _stem(config.in_channels, 64, kernel_size=7, padding=3)
    # layer1 has stride 4, layer2 8, layer3 16, layer4 32; LastLevelMaxPool adds stride 64.
    first = 1 if config.finest_stride == 4 else 2
    layers = list(range(first, 5))
    expansion = 4 if config.backbone == "resnet50" else 1
    in_channels = [64 * expansion * 2 ** (k - 1) for k in layers]
    return_layers = {f"layer{k}": str(i) for i, k in enumerate(layers)}
    return model, return_layers, in_channels


def _mobilenet(
    config: DetectorConfig, norm: Callable[..., nn.Module]
) -> tuple[nn.Module, dict[str, str], list[int]]:
    features = mobilenet_v3_large(weights=None, norm_layer=norm).features
    features[0][0] = _stem(config.in_channels, features[0][0].out_channels, 3, padding=1)
    # The last block of each resolution: torchvision's detection variant taps the first block of
    # the stride-32 stage and the last one, both at stride 32 — too coarse for calcifications.
    last_of_stride = {}
    stride = 2
    for index, block in enumerate(features):
        if getattr(block, "_is_cn", False):
            stride *= 2
        last_of_stride[stride] = index
    wanted = [s for s in config.feature_strides if s != 64]
    return_layers = {str(last_of_stride[s]): str(i) for i, s in enumerate(wanted)}
    in_channels = [_out_channels(features[last_of_stride[s]]) for s in wanted]
    return features, return_layers, in_channels


def _stem(in_channels: int, out_channels: int, kernel_size: int, *, padding: int) -> nn.Conv2d:
    """The first, stride-2 convolution, rebuilt for the two-channel input."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=padding, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _out_channels(block: nn.Module) -> int:
    channels = getattr(block, "out_channels", None)
    if isinstance(channels, int):
        return channels
    raise TypeError(f"cannot tell the output channels of {type(block).__name__}")
