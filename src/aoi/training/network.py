"""The candidate classifier: a small CNN with a class head (background + defect types) and a box head."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, convs: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]
    layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class CandidateNet(nn.Module):
    def __init__(self, in_channels: int, n_outputs: int, width: int = 16, crop_px: int = 48) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _block(in_channels, w),
            _block(w, 2 * w, convs=2),
            _block(2 * w, 3 * w),
            _block(3 * w, 4 * w),
        )
        side = crop_px // 16
        self.neck = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * w * side * side, 128), nn.ReLU(inplace=True), nn.Dropout(0.1)
        )
        self.cls = nn.Linear(128, n_outputs)
        self.box = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.neck(self.features(x))
        return self.cls(z), self.box(z)
