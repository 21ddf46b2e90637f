"""Re-projection of a tomogram at given tilt angles (real-space, bilinear, torch)."""

from __future__ import annotations

import numpy as np
import torch


def reproject(
    volume,
    angles_deg,
    *,
    image_shape: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Project a ``(z, y, x)`` volume at single-axis tilt angles [degrees].

    Uses the convention of docs/conventions.md: the image column at tilt ``theta`` is
    ``x cos(theta) + z sin(theta)`` (from the volume centre ``n // 2``), the row is ``y``. Each
    ``(z, x)`` plane is resampled bilinearly on the rotated grid and summed along the beam.

    Returns
    -------
    ndarray of float32, shape (n_angles, rows, cols)
        ``rows = ny``, ``cols = nx`` unless ``image_shape`` is given.
    """
    vol = torch.as_tensor(np.asarray(volume, np.float32), device=device)
    nz, ny, nx = vol.shape
    rows, cols = image_shape or (ny, nx)
    if rows != ny:
        raise ValueError("image rows must equal the volume's y size")
    angles = np.atleast_1d(np.asarray(angles_deg, np.float64))
    inp = vol.permute(1, 0, 2).unsqueeze(1)  # (ny, 1, nz, nx)
    u = torch.arange(cols, device=device, dtype=torch.float32) - cols // 2  # image column
    t = torch.arange(nz, device=device, dtype=torch.float32) - nz // 2  # along the beam
    out = np.empty((len(angles), rows, cols), np.float32)
    for k, th in enumerate(np.deg2rad(angles)):
        c, s = float(np.cos(th)), float(np.sin(th))
        x = c * u[None, :] - s * t[:, None]  # (nt, ncol)
        z = s * u[None, :] + c * t[:, None]
        # normalised coordinates for align_corners=True: -1 -> index 0, +1 -> index n-1
        gx = (x + nx // 2) / (nx - 1) * 2 - 1
        gz = (z + nz // 2) / (nz - 1) * 2 - 1
        grid = torch.stack([gx, gz], dim=-1).unsqueeze(0).expand(ny, -1, -1, -1)
        sampled = torch.nn.functional.grid_sample(
            inp, grid, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out[k] = sampled.sum(dim=2)[:, 0].cpu().numpy()
    return out
