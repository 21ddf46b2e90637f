"""Differentiable Gaussian splatting of projected atoms: the atom-model fit's renderer.

Each atom adds a separable Gaussian ``amp * g(row) * g(col)`` over a small window of pixels
around its projected position. The gradients are written out (:class:`_Splat`) rather than
left to autograd, which kept every intermediate of the window (about six arrays of
images x atoms x window) and walked them back one operation at a time: on 21 images of
256 x 256 pixels and 8,000 atoms (a 7 x 7 window) the forward pass and its gradients took
0.18 s on two CPU cores, written out 0.13 s, and a refinement calls them a few thousand
times.
"""

from __future__ import annotations

import functools

from ._projection import rotation_center_A


@functools.cache
def _splat_function(torch):
    """The :class:`torch.autograd.Function` (made once, on first use: torch is imported
    lazily)."""

    class _Splat(torch.autograd.Function):
        """``(row, col, amp) -> images``: ``row``, ``col`` (n_images, n_atoms) pixel
        coordinates, ``amp`` (n_atoms,); the window's offsets, ``inv`` (1 / 2 sigma^2 in
        px^-2) and the image shape are constants."""

        @staticmethod
        def forward(ctx, row, col, amp, offs, inv, rows, cols):
            t = torch
            n = row.shape[0]
            pr = t.floor(row)[..., None] + offs  # (n, N, K) the window's rows
            pc = t.floor(col)[..., None] + offs
            dr = pr - row[..., None]
            dc = pc - col[..., None]
            gr = t.exp(-(dr * dr) * inv) * ((pr >= 0) & (pr < rows))
            gc = t.exp(-(dc * dc) * inv) * ((pc >= 0) & (pc < cols))
            ir = pr.clamp(0, rows - 1).to(t.int64)
            ic = pc.clamp(0, cols - 1).to(t.int64)
            ir += (t.arange(n, device=row.device) * rows)[:, None, None]
            idx = (ir * cols)[..., :, None] + ic[..., None, :]  # (n, N, K, K)
            vals = (amp[None, :, None] * gr)[..., :, None] * gc[..., None, :]
            out = t.zeros(n * rows * cols, device=row.device, dtype=vals.dtype)
            out.index_add_(0, idx.view(-1), vals.view(-1))
            ctx.save_for_backward(amp, gr, gc, dr, dc, idx)
            ctx.inv = inv
            return out.view(n, rows, cols)

        @staticmethod
        def backward(ctx, grad):
            amp, gr, gc, dr, dc, idx = ctx.saved_tensors
            gv = torch.take(grad.contiguous(), idx)  # (n, N, K, K): the gradient over each window
            t_r = (gv @ gc[..., None])[..., 0]  # (n, N, K): summed over the window's columns
            two_inv = 2.0 * ctx.inv  # d g(row) / d row = g * 2 inv (p - row)
            d_row = d_col = d_amp = None
            if ctx.needs_input_grad[0]:
                d_row = amp * (t_r * gr * dr).sum(-1) * two_inv
            if ctx.needs_input_grad[1]:
                t_c = (gr[..., None, :] @ gv)[..., 0, :]  # summed over the window's rows
                d_col = amp * (t_c * gc * dc).sum(-1) * two_inv
            if ctx.needs_input_grad[2]:
                d_amp = (t_r * gr).sum(dim=(0, 2))
            return d_row, d_col, d_amp, None, None, None, None

    return _Splat


class _Renderer:
    """Differentiable Gaussian splatting of projected atoms into a batch of images."""

    def __init__(self, shape, pixel_size_A, radius_px, torch, device):
        self.torch = torch
        self.rows, self.cols = shape
        self.px = float(pixel_size_A)
        self.offs = torch.arange(-radius_px, radius_px + 1, device=device, dtype=torch.float32)
        self.center = torch.as_tensor(
            rotation_center_A((self.rows, self.cols), self.px), dtype=torch.float32, device=device
        )
        self.rc = torch.tensor([self.rows // 2, self.cols // 2], dtype=torch.float32, device=device)
        self._splat = _splat_function(torch)

    def coords(self, pos, theta_rad, offsets, axis_rad=None):
        """(n_img, n_atoms) row and column pixel coordinates; ``axis_rad``: every image's
        content turned by that angle about the centre pixel (``axis_matrix``'s sense)."""
        d = (pos - self.center) / self.px
        cos = self.torch.cos(theta_rad)[:, None]
        sin = self.torch.sin(theta_rad)[:, None]
        row = d[None, :, 1].expand(len(theta_rad), -1)
        col = d[None, :, 2] * cos + d[None, :, 0] * sin
        if axis_rad is not None:
            ca, sa = self.torch.cos(axis_rad), self.torch.sin(axis_rad)
            row, col = ca * row - sa * col, sa * row + ca * col
        return row + self.rc[0] + offsets[:, 0:1], col + self.rc[1] + offsets[:, 1:2]

    def render(self, row, col, amp, sigma_px):
        """Images (n_img, rows, cols) of unit-offset Gaussians of width ``sigma_px`` (a
        constant: not differentiated) with amplitudes ``amp`` (n_atoms,)."""
        inv = 1.0 / (2.0 * float(sigma_px) ** 2)
        return self._splat.apply(row, col, amp, self.offs, inv, self.rows, self.cols)
