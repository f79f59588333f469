"""VGG16's convolutional stack with torchvision's parameter names (``features.<i>.weight``).

torchvision itself is not a dependency (its wheels do not load with the CPU torch build), but a
torchvision ``vgg16`` state dict loads straight into this module; see training/weights/.
"""

from __future__ import annotations

import torch
from torch import nn

POOL = "M"


def vgg16_layout(widths: tuple[int, ...]) -> list[int | str]:
    """torchvision's configuration "D", with the four stage widths as parameters."""
    w1, w2, w3, w4 = widths
    return [w1, w1, POOL, w2, w2, POOL, w3, w3, w3, POOL, w4, w4, w4, POOL, w4, w4, w4, POOL]


class VGG16Features(nn.Module):
    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in vgg16_layout(widths):
            if item == POOL:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(c_in, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                # torchvision's VGG init: keeps activations alive through 13 layers, so a backbone
                # trained from scratch (or frozen at init) still gives informative features.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def conv_layers(self) -> list[nn.Conv2d]:
        return [m for m in self.features if isinstance(m, nn.Conv2d)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
