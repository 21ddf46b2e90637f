"""The 3D U-Net of neural-network-assisted AET (Lee, Jeong & Yang 2021), fully convolutional.

Per level: two 3x3x3 convolutions (LeakyReLU 0.2) then a 2x2x2 max-pool down; at the bottom
dropout; up: a 3x3x3 transposed convolution of stride 2, concatenation with the skip, two
3x3x3 convolutions; a 1x1x1 convolution and ReLU give the output (densities are >= 0). The
input's sides must be multiples of ``2 ** depth`` (:func:`napari_aet.augment.augment_volume`
pads for you).
"""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1),
        nn.LeakyReLU(0.2, inplace=True),
    )


class UNet3D(nn.Module):
    """3D U-Net mapping a tomogram to a clean one of the same size.

    Parameters
    ----------
    depth : int
        Number of down-sampling steps (the sides must be multiples of ``2 ** depth``).
    width : int
        Channels of the first level; doubled at each level down.
    dropout : float
        Dropout probability at the bottom level (training only).
    """

    def __init__(self, *, depth: int = 3, width: int = 16, dropout: float = 0.1):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError("depth and width must be at least 1")
        self.config = {"depth": int(depth), "width": int(width), "dropout": float(dropout)}
        ch = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = 1
        for c in ch[:-1]:
            self.down.append(_block(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool3d(2)
        self.bottom = nn.Sequential(_block(ch[-2], ch[-1]), nn.Dropout3d(dropout))
        self.up = nn.ModuleList()
        self.up_block = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(
                nn.Sequential(
                    nn.ConvTranspose3d(ch[i + 1], ch[i], 3, stride=2, padding=1, output_padding=1),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            self.up_block.append(_block(2 * ch[i], ch[i]))
        self.out = nn.Conv3d(ch[0], 1, 1)
        # start with a small positive output everywhere: a ReLU output that starts at zero
        # has no gradient and never learns
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.fill_(0.05)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** self.config["depth"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.up_block, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return torch.relu(self.out(x))
