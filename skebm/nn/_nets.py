"""Energy networks.

Every network maps a batch shaped ``(n, *feature_shape)`` to either one
energy per sample, shape ``(n,)`` (``n_outputs=1``), or to ``n_outputs``
logits, shape ``(n, n_outputs)``, read as a class-conditional energy
``E(x, y) = -f(x)[y]`` with marginal ``E(x) = -logsumexp_y f(x)[y]`` (JEM).
:func:`output_to_energy` applies that convention; a user's own module only
has to follow it.
"""

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _sn

__all__ = ["MLPEnergy", "ConvEnergy", "ResNetEnergy", "check_energy_module", "output_to_energy"]

_ACTIVATIONS = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
}


def _activation(name):
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}.")
    return _ACTIVATIONS[name]()


def _rebuild(cls, args, kwargs, state, training):
    module = cls(*args, **kwargs)
    module.load_state_dict(state)
    return module.train(training)


class _PicklableNet(nn.Module):
    """A network that pickles even with spectral-norm layers.

    torch refuses to pickle a parametrized layer ("only supported through
    state_dict()"), so a fitted estimator whose network has
    ``spectral_norm=True`` (the IGEBM preset) could not be pickled, given to
    joblib or copied by skorch. Such a network pickles as its class, its
    constructor arguments and its ``state_dict``, and is rebuilt from them;
    one without parametrized layers pickles as any module.
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        self.__dict__["_init_args"] = (args, kwargs)  # before nn.Module.__init__: it does not clear __dict__
        return self

    def __reduce_ex__(self, protocol):
        if not any(parametrize.is_parametrized(m) for m in self.modules()):
            return super().__reduce_ex__(protocol)
        args, kwargs = self._init_args
        return _rebuild, (type(self), args, kwargs, self.state_dict(), self.training)


def _maybe_sn(layer, spectral_norm):
    return _sn(layer) if spectral_norm else layer


def output_to_energy(out, y=None):
    """Turn a network output into energies.

    Parameters
    ----------
    out : torch.Tensor
        ``(n,)`` or ``(n, 1)`` energies, or ``(n, k)`` logits.
    y : torch.Tensor of int, default=None
        Class indices for the conditional energy ``-f(x)[y]``; ``None``
        gives the marginal ``-logsumexp f(x)`` for logits.

    Returns
    -------
    energy : torch.Tensor of shape (n,)
    """
    if out.ndim == 1:
        return out
    if out.ndim != 2:
        raise ValueError(f"An energy network must return (n,) or (n, k) outputs, got {tuple(out.shape)}.")
    if out.shape[1] == 1:
        return out[:, 0]
    if y is None:
        return -torch.logsumexp(out, dim=1)
    return -out.gather(1, y.view(-1, 1).long())[:, 0]


def check_energy_module(module, feature_shape, n_outputs=1, *, name=None):
    """Call ``module`` once on two inputs and check that it follows the output convention.

    The engines check a network this way once, when they are built, so
    that a module returning the wrong shape (``(2n,)`` values for ``n``
    inputs, a tuple, a NumPy array) or failing on the estimator's inputs
    gives one clear ``ValueError`` instead of training silently on wrong
    energies or failing deep inside a fit. The call runs in evaluation
    mode (no batch-norm statistics or spectral-norm vectors change) on
    zeros that require a gradient, as Langevin chains do.

    Parameters
    ----------
    module : torch.nn.Module
        The energy network.
    feature_shape : tuple of int
        Shape of one sample as the network sees it.
    n_outputs : int, default=1
        1: the module returns ``(n,)`` energies, ``(n, 1)`` or ``(n, k)``
        logits (read through the marginal); k > 1: it must return
        ``(n, n_outputs)`` logits, one per class.
    name : str, default=None
        How the error names the module (default: its class name).

    Raises
    ------
    ValueError
        When the module raises on the inputs, or returns anything but a
        floating-point tensor of an accepted shape that depends
        differentiably on its input.
    """
    n = 2
    name = name or type(module).__name__
    tensor = next((t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    x = torch.zeros((n, *feature_shape), device=tensor.device if tensor is not None else "cpu", requires_grad=True)
    expected = f"({n},) energies or ({n}, k) logits" if n_outputs == 1 else f"({n}, {n_outputs}) logits (one per class)"
    where = f"for {n} inputs of shape {tuple(feature_shape)}: it must return {expected}"
    was_training = module.training
    module.train(False)
    try:
        with torch.enable_grad():
            out = module(x)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure becomes the one documented error
        raise ValueError(f"The energy module {name} failed {where} ({type(exc).__name__}: {exc}).") from exc
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"The energy module {name} returned a {type(out).__name__} {where}, as a torch.Tensor.")
    shape = tuple(out.shape)
    ok = (out.ndim == 1 and n_outputs == 1) or (out.ndim == 2 and (n_outputs == 1 or shape[1] == n_outputs))
    if not ok or shape[0] != n:
        raise ValueError(f"The energy module {name} returned an output of shape {shape} {where}.")
    if not out.is_floating_point():
        raise ValueError(f"The energy module {name} returned {out.dtype} values {where}, as floating-point values.")
    if not out.requires_grad:
        raise ValueError(
            f"The energy module {name} returned values that do not depend differentiably on its input {where} "
            "(Langevin chains and training follow their gradient)."
        )


def _as_images(x, image_shape):
    """Reshape a batch to ``(n, C, H, W)``; channels-last on CPU.

    oneDNN's CPU convolutions run faster on channels-last tensors (on this
    project's machines 10-15% in float32 and about 25% in bfloat16 for
    32x32 inputs, neutral for 8x8), and the layout flows through the
    network; CUDA inputs are left as they are.
    """
    x = x.reshape(-1, *image_shape)
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _head(features, n_outputs):
    return features[:, 0] if n_outputs == 1 else features


class MLPEnergy(_PicklableNet):
    """Fully connected energy network for flat features.

    Parameters
    ----------
    n_features : int
        Input dimension.
    n_outputs : int, default=1
        1 for an energy, k for k logits.
    hidden_units : tuple of int, default=(128, 128, 128)
        Widths of the hidden layers.
    activation : str, default="silu"
        Smooth activations give smooth Langevin gradients.
    spectral_norm : bool, default=False
        Spectral normalisation of every linear layer.
    fourier_features : int, default=0
        Number ``m`` of random Fourier features: the input ``x`` is
        extended to ``[x, sin(x B), cos(x B)]`` with a fixed random matrix
        ``B`` of shape ``(n_features, m)`` and entries ``N(0,
        fourier_scale^2)`` (Tancik et al., 2020). Plain MLPs learn fine
        detail of a low-dimensional density very slowly; these features let
        them resolve structure on the scale ``1 / fourier_scale``. 0
        disables them.
    fourier_scale : float, default=1.0
        Standard deviation of the entries of ``B``.
    """

    def __init__(
        self,
        n_features,
        n_outputs=1,
        hidden_units=(128, 128, 128),
        activation="silu",
        spectral_norm=False,
        fourier_features=0,
        fourier_scale=1.0,
    ):
        super().__init__()
        self.n_outputs = n_outputs
        self.fourier_scale = float(fourier_scale)
        layers, width = [], n_features
        if fourier_features:
            self.register_buffer("frequencies", torch.randn(n_features, int(fourier_features)) * fourier_scale)
            width = n_features + 2 * int(fourier_features)
        else:
            self.frequencies = None
        for units in hidden_units:
            layers += [_maybe_sn(nn.Linear(width, units), spectral_norm), _activation(activation)]
            width = units
        layers.append(_maybe_sn(nn.Linear(width, n_outputs), spectral_norm))
        self.net = nn.Sequential(*layers)

    def reset_parameters(self, generator=None):
        """Redraw the random Fourier frequencies (the layers are reset by :func:`~skebm.nn.reset_parameters`)."""
        if self.frequencies is not None:
            with torch.no_grad():
                self.frequencies.normal_(0.0, self.fourier_scale, generator=generator)

    def forward(self, x):
        x = x.flatten(1)
        if self.frequencies is not None:
            proj = x @ self.frequencies
            x = torch.cat([x, torch.sin(proj), torch.cos(proj)], dim=1)
        return _head(self.net(x), self.n_outputs)


class ConvEnergy(_PicklableNet):
    """Small convolutional energy for small images (8x8 to 32x32).

    Stride-2 3x3 convolutions halve the resolution down to about 4x4; the
    feature maps are then flattened (or summed over space) and mapped
    linearly to the output.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)``.
    n_outputs : int, default=1
        1 for an energy, k for k logits.
    channels : tuple of int or "auto", default="auto"
        Channels of the successive convolutions; the first keeps the
        resolution (see ``first_stride``), the others halve it while it
        exceeds 4. ``"auto"``: ``(32, 64, 64)`` up to 16x16, ``(64, 128,
        128)`` above (chosen by the sweep in
        ``benchmarks/reports/generator_images.md``).
    activation : str, default="silu"
        Activation after every convolution; smooth ones give smooth
        Langevin gradients.
    spectral_norm : bool, default=False
        Spectral normalisation of every layer.
    pooling : {"flatten", "sum"}, default="flatten"
        How the last feature maps reach the output layer: ``"flatten"``
        keeps where each feature is (on 8x8 digits its samples are much
        better than those of the sum); ``"sum"`` sums over space, as the
        SNGAN-style discriminators do.
    first_stride : {1, 2, "auto"}, default="auto"
        Stride of the first convolution. ``"auto"`` is 2 for images larger
        than 16x16 (the full-resolution first layer is where most of the
        Langevin time of 28x28 and 32x32 images goes) and 1 below.
    """

    def __init__(
        self,
        image_shape,
        n_outputs=1,
        channels="auto",
        activation="silu",
        spectral_norm=False,
        pooling="flatten",
        first_stride="auto",
    ):
        super().__init__()
        if pooling not in ("flatten", "sum"):
            raise ValueError(f"pooling must be 'flatten' or 'sum', got {pooling!r}.")
        if first_stride not in (1, 2, "auto"):
            raise ValueError(f"first_stride must be 1, 2 or 'auto', got {first_stride!r}.")
        self.image_shape = tuple(image_shape)
        self.n_outputs = n_outputs
        self.pooling = pooling
        c_in, h, w = self.image_shape
        large = min(h, w) > 16
        if first_stride == "auto":
            first_stride = 2 if large else 1
        if isinstance(channels, str):
            if channels != "auto":
                raise ValueError(f"channels must be a tuple of int or 'auto', got {channels!r}.")
            channels = (64, 128, 128) if large else (32, 64, 64)
        layers = []
        for i, c_out in enumerate(channels):
            stride = first_stride if i == 0 else (2 if h > 4 else 1)
            h, w = (h + stride - 1) // stride, (w + stride - 1) // stride
            layers += [_maybe_sn(nn.Conv2d(c_in, c_out, 3, stride, 1), spectral_norm), _activation(activation)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        n_in = c_in * h * w if pooling == "flatten" else c_in
        self.out = _maybe_sn(nn.Linear(n_in, n_outputs), spectral_norm)

    def forward(self, x):
        h = self.features(_as_images(x, self.image_shape))
        h = h.flatten(1) if self.pooling == "flatten" else h.sum(dim=(2, 3))
        return _head(self.out(h), self.n_outputs)


class _ResBlock(nn.Module):
    def __init__(self, c_in, c_out, downsample, first, activation, spectral_norm):
        super().__init__()
        self.first = first
        self.downsample = downsample
        self.act = _activation(activation)
        self.conv1 = _maybe_sn(nn.Conv2d(c_in, c_out, 3, 1, 1), spectral_norm)
        self.conv2 = _maybe_sn(nn.Conv2d(c_out, c_out, 3, 1, 1), spectral_norm)
        self.shortcut = None
        if c_in != c_out or downsample:
            self.shortcut = _maybe_sn(nn.Conv2d(c_in, c_out, 1, 1, 0), spectral_norm)

    def forward(self, x):
        h = x if self.first else self.act(x)
        h = self.conv2(self.act(self.conv1(h)))
        skip = x
        if self.downsample:
            h = nn.functional.avg_pool2d(h, 2)
        if self.shortcut is not None:
            # SNGAN order: the first block pools before its 1x1 conv.
            if self.first:
                skip = self.shortcut(nn.functional.avg_pool2d(skip, 2) if self.downsample else skip)
            else:
                skip = self.shortcut(skip)
                if self.downsample:
                    skip = nn.functional.avg_pool2d(skip, 2)
        return h + skip


class ResNetEnergy(_PicklableNet):
    """SNGAN-discriminator-style residual energy for 32x32 images and up.

    Two downsampling residual blocks followed by plain ones, a final
    activation, a sum over space and a linear output, as in the SNGAN
    discriminator used by the EBM Life Cycle and IGEBM code.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)``.
    n_outputs : int, default=1
        1 for an energy, k for k logits.
    width : int, default=128
        Channels of every block.
    n_blocks : int, default=4
        Number of residual blocks; the first two downsample.
    activation : str, default="leaky_relu"
        Activation inside the blocks and before the output layer.
    spectral_norm : bool, default=False
        Spectral normalisation of every layer (IGEBM, SNGAN).
    """

    def __init__(self, image_shape, n_outputs=1, width=128, n_blocks=4, activation="leaky_relu", spectral_norm=False):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.n_outputs = n_outputs
        blocks, c_in = [], self.image_shape[0]
        for i in range(n_blocks):
            blocks.append(_ResBlock(c_in, width, downsample=i < 2, first=i == 0, activation=activation, spectral_norm=spectral_norm))
            c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.act = _activation(activation)
        self.out = _maybe_sn(nn.Linear(width, n_outputs), spectral_norm)

    def forward(self, x):
        h = self.act(self.blocks(_as_images(x, self.image_shape)))
        return _head(self.out(h.sum(dim=(2, 3))), self.n_outputs)
