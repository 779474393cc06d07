"""Restoration networks and the DL-Net fidelity module.

Every network maps ``network_input`` (N, 3, H, W) in [0, 1] (see
:mod:`robench.tasks.restoration_spectrum.degradations`) to a restored image of the same shape,
split in two so that DL-Net can work on a late feature::

    z = net.features(network_input)          # (N, C_z, H, W), after the last nonlinearity
    x = net.decode(z, network_input)         # network_input + tail(z)

The **tail** is affine (two 3×3 convolutions with no activation between them), so
``x(z)`` is affine in ``z`` and, every forward operator A being linear, the fidelity term
E(z) = ½‖M ⊙ (y − A(x(z)))‖² is an exact quadratic in z. Outputs are not clamped here
(the task clamps to [0, 1] when it scores); training losses see the raw output. A new
network's last layer is zero, so it starts as the identity on its input.

- :class:`ContextEncoder` (inpainting, interpolation): a small context-encoder-style
  encoder–decoder (strided convolutions down to H/4, a dilated bottleneck, upsampling
  back) with U-Net skips and a global residual — the residual and skips keep the observed
  pixels' detail, which a plain bottleneck at 32×32 loses (interpolation needs it).
- :class:`VDSR` (super-resolution): VDSR-style plain 3×3 convolution stack on the bicubic
  upsampled input with a global residual.
- :class:`FidelityRefinement` (DL-Net): K steps on z that lower E(z), unrolled so the
  whole thing trains end to end (see its docstring for the step rule).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robench.errors import UserError

ARCHITECTURES = {"inpainting": "context-encoder", "interpolation": "context-encoder",
                 "super_resolution": "vdsr"}


class RestorationNet(nn.Module):
    """Base: ``forward(x) = decode(features(x), x)``; subclasses define ``features`` and
    ``tail`` (a list of two ``nn.Conv2d``, applied with no activation between them)."""

    tail: nn.ModuleList

    def zero_last_layer(self) -> None:
        """Start as the identity on ``network_input``: the tail's last convolution is zero.
        With a random one, the initial residual wrecks the input and, at the learning rates
        our budgets need, training collapsed to dead ReLUs that output the input unchanged."""
        nn.init.zeros_(self.tail[-1].weight)
        nn.init.zeros_(self.tail[-1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, z: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
        """network_input + tail(z): (N, 3, H, W), unclamped."""
        out = z
        for conv in self.tail:
            out = conv(out)
        return network_input + out

    def tail_linear(self, v: torch.Tensor) -> torch.Tensor:
        """The tail's linear part (biases dropped) applied to ``v``: the Jacobian dx/dz · v."""
        out = v
        for conv in self.tail:
            out = F.conv2d(out, conv.weight, None, conv.stride, conv.padding, conv.dilation)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.features(x), x)


class ContextEncoder(RestorationNet):
    """Encoder–decoder for inpainting/interpolation; ``width`` channels at full resolution,
    2·width below. Fully convolutional: any image size. Its two stride-2 stages need sides
    that are multiples of 4, so other sizes (whole images: 481×321) are padded at the
    bottom and right by edge replication to the next multiple of 4 and ``z`` is cropped
    back to (H, W); sides that are multiples of 4 (the training crops) are not padded."""

    def __init__(self, width: int = 16):
        super().__init__()
        c = width
        self.enc1 = nn.Conv2d(3, c, 3, padding=1)
        self.enc2 = nn.Conv2d(c, 2 * c, 4, stride=2, padding=1)  # H/2
        self.enc3 = nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1)  # H/4
        self.mid1 = nn.Conv2d(2 * c, 2 * c, 3, padding=2, dilation=2)
        self.mid2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1)
        self.dec2 = nn.Conv2d(4 * c, 2 * c, 3, padding=1)  # H/2, after the skip from enc2
        self.dec1 = nn.Conv2d(3 * c, c, 3, padding=1)  # H, after the skip from enc1: z
        self.tail = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)])
        self.zero_last_layer()

    def features(self, x):
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(e1))
        e3 = F.relu(self.enc3(e2))
        m = F.relu(self.mid2(F.relu(self.mid1(e3))))
        d2 = F.relu(self.dec2(torch.cat([F.interpolate(m, scale_factor=2.0, mode="nearest"), e2], 1)))
        z = F.relu(self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="nearest"), e1], 1)))
        return z[..., :h, :w] if pad_h or pad_w else z


class VDSR(RestorationNet):
    """VDSR-style super-resolution on the bicubic-upsampled input: ``depth`` 3×3 conv+ReLU
    layers of ``width`` channels, then the affine tail, plus the input."""

    def __init__(self, width: int = 16, depth: int = 6):
        super().__init__()
        c = width
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.tail = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, 3, 3, padding=1)])
        self.zero_last_layer()

    def features(self, x):
        return self.body(x)


def build_net(family: str, width: int) -> RestorationNet:
    """The base architecture of ``family`` (see ``ARCHITECTURES``)."""
    arch = ARCHITECTURES.get(family)
    if arch == "context-encoder":
        return ContextEncoder(width)
    if arch == "vdsr":
        return VDSR(width)
    raise UserError(f"no restoration network for family {family!r}; expected one of {', '.join(ARCHITECTURES)}")


class FidelityRefinement(nn.Module):
    """DL-Net: the base network plus K fidelity steps on its late feature z.

    With z₀ = features(network_input) and x(z) = decode(z, network_input), step k is a
    plain gradient step on E(z) = ½‖M ⊙ (y − A(x(z)))‖² (per image; M = 1 for
    super-resolution)::

        g  = ∇_z E(z_k)
        α  = ‖g‖² / ‖M ⊙ A(J g)‖²        exact line search along −g (J = dx/dz, the tail's linear part)
        z_{k+1} = z_k − γ_k α g,          γ_k = 2·sigmoid(θ_k) ∈ (0, 2), θ_k learned

    Because E is an exact quadratic in z (affine tail, linear A), every step lowers E by
    γ_k(1 − γ_k/2)‖g‖⁴/‖Jg‖² > 0 whatever the learned γ_k: the masked error on the
    observation never goes up. α makes the step scale-free across levels (the role Adam's
    normalisation plays in the reference code, which uses K = 5 Adam steps). The steps are
    unrolled with ``create_graph`` while training, so the loss on x(z_K) trains the
    network and the γ_k end to end.
    """

    def __init__(self, net: RestorationNet, steps: int = 5, step_size: float = 1.0,
                 learn_step: bool = True):
        super().__init__()
        if not 0.0 < step_size < 2.0:
            raise UserError(f"DL-Net step_size={step_size!r}; expected a number in (0, 2) "
                            "(a multiple of the exact line-search step)")
        self.net = net
        self.steps = int(steps)
        theta = math.log(step_size / (2.0 - step_size))  # inverse of 2·sigmoid
        self.step_logits = nn.Parameter(torch.full((self.steps,), theta), requires_grad=learn_step)

    def step_sizes(self) -> torch.Tensor:
        """γ_k, shape (K,), each in (0, 2)."""
        return 2.0 * torch.sigmoid(self.step_logits)

    def forward(self, network_input, y, mask, forward_operator, return_energies: bool = False):
        """Restore: (N, 3, H, W), unclamped. ``return_energies`` also returns E per step,
        a (K + 1, N) tensor: E(z_0), ..., E(z_K)."""
        create_graph = self.training and torch.is_grad_enabled()
        with torch.enable_grad():
            z = self.net.features(network_input)
            if not create_graph:  # evaluation: steps need dE/dz, not a graph back to the weights
                z = z.detach().requires_grad_(True)
            energies = []
            gammas = self.step_sizes()
            for k in range(self.steps):
                residual = self._masked(forward_operator(self.net.decode(z, network_input)) - y, mask)
                energy = 0.5 * residual.square().sum(dim=(1, 2, 3))
                energies.append(energy.detach())
                (grad,) = torch.autograd.grad(energy.sum(), z, create_graph=create_graph)
                jg = self._masked(forward_operator(self.net.tail_linear(grad)), mask)
                alpha = grad.square().sum(dim=(1, 2, 3)) / jg.square().sum(dim=(1, 2, 3)).clamp_min(1e-20)
                z = z - (gammas[k] * alpha).view(-1, 1, 1, 1) * grad
                if not create_graph:
                    z = z.detach().requires_grad_(True)
            x = self.net.decode(z, network_input)
            if return_energies:
                residual = self._masked(forward_operator(x) - y, mask)
                energies.append(0.5 * residual.square().sum(dim=(1, 2, 3)).detach())
        if not create_graph:
            x = x.detach()
        if return_energies:
            return x, torch.stack(energies)
        return x

    @staticmethod
    def _masked(t, mask):
        return t if mask is None else t * mask
