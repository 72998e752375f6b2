"""The tracking embedding head (mmdet ``QuasiDenseEmbedHead`` as configured by MASA).

RoI features ``(K, 256, 7, 7)`` -> 4 x [3x3 conv (no bias) -> GroupNorm(32) -> ReLU] -> flatten
(12544) -> Linear(12544 -> 1024) -> ReLU -> ``fc_embed`` Linear(1024 -> 256).

The embeddings are **not** L2-normalised here: the tracker and the training losses use raw dot
products (bi-softmax, contrastive loss) and cosines where they need them.

Keys (the authors' ``track_head.embed_head.*``): ``convs.{i}.conv.weight``, ``convs.{i}.gn.{weight,bias}``,
``fcs.0.{weight,bias}``, ``fc_embed.{weight,bias}``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ConvGNReLU", "TrackHead"]


class ConvGNReLU(nn.Module):
    """3x3 ``conv`` (padding 1, no bias) -> ``gn`` (GroupNorm) -> ReLU (mmcv ``ConvModule`` with GN)."""

    def __init__(self, in_channels: int, out_channels: int, gn_groups: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.gn = nn.GroupNorm(gn_groups, out_channels)
        self.relu = nn.ReLU(inplace=True)
        # mmcv ConvModule default init: Kaiming normal (fan_out, relu).
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.gn(self.conv(x)))


class TrackHead(nn.Module):
    """Maps pooled RoI features to appearance embeddings.

    Args:
        in_channels: channels of the RoI features (256).
        num_convs: number of conv-GN-ReLU blocks (4).
        conv_channels: output channels of each conv (256).
        roi_size: side of the pooled RoI grid (7).
        fc_channels: width of the hidden Linear layer (1024).
        embed_dim: embedding size (256).
        gn_groups: GroupNorm groups (32).

    ``forward(roi_feats (K, in_channels, roi_size, roi_size))`` -> ``(K, embed_dim)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        num_convs: int = 4,
        conv_channels: int = 256,
        roi_size: int = 7,
        fc_channels: int = 1024,
        embed_dim: int = 256,
        gn_groups: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.roi_size = int(roi_size)
        self.embed_dim = int(embed_dim)
        self.convs = nn.ModuleList(
            ConvGNReLU(in_channels if i == 0 else conv_channels, conv_channels, gn_groups) for i in range(num_convs)
        )
        flat = (conv_channels if num_convs > 0 else in_channels) * roi_size * roi_size
        self.fcs = nn.ModuleList([nn.Linear(flat, fc_channels)])
        self.relu = nn.ReLU(inplace=True)
        self.fc_embed = nn.Linear(fc_channels, embed_dim)
        # mmdet QuasiDenseEmbedHead init_cfg: Xavier(uniform) Linears, fc_embed N(0, 0.01); biases 0.
        for fc in self.fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.fc_embed.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc_embed.bias)

    def forward(self, roi_feats: Tensor) -> Tensor:
        if roi_feats.ndim != 4 or roi_feats.shape[1] != self.in_channels or roi_feats.shape[-1] != self.roi_size:
            raise ValueError(
                f"TrackHead: expected RoI features (K, {self.in_channels}, {self.roi_size}, {self.roi_size}), "
                f"got {list(roi_feats.shape)}"
            )
        x = roi_feats
        for conv in self.convs:
            x = conv(x)  # (K, conv_channels, 7, 7)
        x = x.flatten(1)  # (K, conv_channels * 49)
        for fc in self.fcs:
            x = self.relu(fc(x))  # (K, fc_channels)
        return self.fc_embed(x)  # (K, embed_dim)
