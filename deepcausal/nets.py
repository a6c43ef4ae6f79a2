"""Default feature networks ("backbones"), chosen from the input shape.

Each maps a batch (n, d_in) to features (n, d_out); heads add their own intercept column.
Users may pass any ``torch.nn.Module`` (or a factory ``callable(d_in) -> Module``) instead.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

__all__ = ["mlp", "SkipMLP", "image_mlp", "default_net", "build_net", "NetSpec"]

NetSpec = Union[None, nn.Module, Callable[[int], nn.Module]]

# Inputs with at least this many columns are treated as flattened square images.
IMAGE_MIN_DIM = 1024
# Keeps SkipMLP's row normalisation finite where a row's ReLU features are all zero (they stay zero).
_RMS_EPS = 1e-6


def mlp(d_in: int, widths: Sequence[int] = (64, 32), d_out: int = 16) -> nn.Sequential:
    """ReLU MLP d_in → widths → d_out, ending in a ReLU so features are non-negative and bounded below.

    Shapes: (n, d_in) → (n, d_out).
    """
    layers, d = [], d_in
    for w in (*widths, d_out):
        layers += [nn.Linear(d, w), nn.ReLU()]
        d = w
    return nn.Sequential(*layers)


class SkipMLP(nn.Module):
    """Features [x, mlp(x)]: the raw (standardized) input beside learned features.

    Keeping x itself means the model nests its linear counterpart (DFIV with linear features is 2SLS),
    so a linear effect never has to be rebuilt from ReLU pieces. Shapes: (n, d_in) → (n, d_in + d_out).

    With ``normalize=True`` each row's learned features h = mlp(x) are divided by their root mean square,
    [x, h / √(mean h² + ε)], so the network cannot change their scale. DFIV's stage-2 loss, taken with the
    ridge-shrunk head fixed, otherwise rewards ever larger treatment features: they drift over long fits
    and at 10⁶ rows a fit diverged (benchmarks/RESULTS.md, "Diagnosis: treatment-feature drift"). With
    the normalisation that fit trains to the end. It is not DFIV's default: at 5,000 rows it raised the
    held-out stage-2 loss on two designs (RESULTS.md, "Treatment-feature normalisation (DFIV)"). The
    flag is kept in the ``state_dict`` (a buffer), so saved weights only load into a network of the
    same kind.
    """

    normalize = False  # class default: a SkipMLP pickled before the option existed keeps its behaviour

    def __init__(self, d_in: int, widths: Sequence[int] = (64, 32), d_out: int = 16, normalize: bool = False):
        super().__init__()
        self.mlp = mlp(d_in, widths, d_out)
        self.normalize = bool(normalize)
        if self.normalize:
            self.register_buffer("row_rms_normalized", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp(x)
        if self.normalize:
            h = h * torch.rsqrt(h.pow(2).mean(1, keepdim=True) + _RMS_EPS)
        return torch.cat([x, h], dim=1)


def image_mlp(d_in: int, widths: Sequence[int] = (256, 128), d_out: int = 32) -> nn.Sequential:
    """Spectral-normalised tanh MLP for flattened images, after the DFIV paper's dSprites network.

    Spectral normalisation bounds each layer's Lipschitz constant, which keeps the features of
    noisy 4096-pixel inputs smooth. Shapes: (n, d_in) → (n, d_out).
    """
    layers, d = [], d_in
    for w in (*widths, d_out):
        layers += [nn.utils.parametrizations.spectral_norm(nn.Linear(d, w)), nn.Tanh()]
        d = w
    return nn.Sequential(*layers)


def default_net(d_in: int, d_out: int = 16, skip: bool = True) -> nn.Module:
    """[x, MLP(x)] for vectors (:class:`SkipMLP`; a plain :func:`mlp` with ``skip=False``), the image
    MLP for inputs with ≥ 1024 columns.

    Each estimator picks ``skip`` by its own validation: for DFIV the skip lowered the held-out
    stage-2 loss on demand by about 6%; DFPV keeps the plain MLP its defaults were validated with.
    """
    if d_in >= IMAGE_MIN_DIM:
        return image_mlp(d_in)
    return SkipMLP(d_in, d_out=d_out) if skip else mlp(d_in, d_out=d_out)


def build_net(spec: NetSpec, d_in: int, role: str, default: Callable[[int], nn.Module] = default_net) -> nn.Module:
    """Instantiate a role's network: the default, a deep copy of a given module, or a factory's output.

    A given module is copied so that fitting twice starts from the same weights and the user's
    module is left untouched.
    """
    import copy

    if spec is None:
        return default(d_in)
    if isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    if callable(spec):
        net = spec(d_in)
        if not isinstance(net, nn.Module):
            raise ValueError(f"{role}: the factory must return a torch.nn.Module, got {type(net).__name__}")
        return net
    raise ValueError(f"{role}: expected None, a torch.nn.Module or a factory callable, got {type(spec).__name__}")


def output_dim(net: nn.Module, d_in: int, role: str, device: Optional[torch.device] = None) -> int:
    """Feature dimension of ``net``, found by one forward pass on two zero rows."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        try:
            out = net(torch.zeros(2, d_in, device=device))
        except Exception as exc:  # the user's module does not accept the role's inputs
            raise ValueError(f"{role}: the network fails on inputs of shape (n, {d_in}): {exc}") from exc
    net.train(was_training)
    if out.ndim != 2:
        raise ValueError(f"{role}: the network must return (n, d) features, got shape {tuple(out.shape)}")
    return int(out.shape[1])
