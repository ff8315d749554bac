"""Diffusion families (SPEC §1; gDDCM Eq. 8 and Eq. 16): one class per family.

Every supported diffusion model has the marginal ``x_t = s(t)·x + S(t)·ε`` with ``S`` increasing
in ``t``. A family knows ``s`` and ``S``, its valid time range and its "clean" time (where
``S = 0``); times are plain floats (integers for ``vp-discrete``) so plans can be stored as data.
It also holds everything else that differs between families (EDM's one-class-per-family idea):
what this project's networks predict in it and their preconditioning, the training-time
distribution and loss, the plan defaults, and the times and solver of its own ODE sampler. Adding
a family is one subclass here; ``Family(name, ...)`` builds the registered class of that name.

``convert_output`` turns any model output ``o = a·x + b·ε`` into both predictions (x̂0, ε̂):
one function for ε-, x̂0-, velocity- and v-prediction.
"""
from __future__ import annotations

import math

import numpy as np
import torch

PREDICTIONS = ("epsilon", "sample", "velocity", "v")


def linspace_f64(start: float, end: float, n: int) -> list[float]:
    """``torch.linspace(start, end, n, dtype=float64)`` with the same bits on every CPU.

    PyTorch's vectorised kernel computes ``start + step·i`` (first half) and ``end - step·(n-1-i)``
    (second half) with a fused multiply-add, its scalar fallback (``ATEN_CPU_CAPABILITY=default``)
    without: the two differ in the last bit of about a fifth of the values, which changes a
    schedule's hash. This computes the FMA form exactly (rational arithmetic, one rounding),
    matching the vectorised kernel and the schedules recorded in existing token headers."""
    from fractions import Fraction
    if n == 1:
        return [float(start)]
    step = (end - start) / (n - 1)
    fs, fe, fst = Fraction(start), Fraction(end), Fraction(step)
    return [float(fs + fst * i) if i < n // 2 else float(fe - fst * (n - 1 - i)) for i in range(n)]


def ddpm_alphas_cumprod(num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                        beta_end: float = 0.02, schedule: str = "linear") -> torch.Tensor:
    """ā_t of a DDPM noise schedule (diffusers' ``linear``, ``scaled_linear`` and
    ``squaredcos_cap_v2`` conventions), float64, bit-identical on every CPU (:func:`linspace_f64`;
    the product is a sequential float64 loop, as ``torch.cumprod`` computes it)."""
    T = num_train_timesteps
    if schedule == "linear":
        betas = torch.tensor(linspace_f64(beta_start, beta_end, T), dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.tensor(linspace_f64(beta_start ** 0.5, beta_end ** 0.5, T), dtype=torch.float64) ** 2
    elif schedule == "squaredcos_cap_v2":
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        betas = torch.tensor([min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)],
                             dtype=torch.float64)
    else:
        raise ValueError(f"unknown beta schedule {schedule!r}; use linear, scaled_linear or "
                         "squaredcos_cap_v2")
    out, acc = [], 1.0
    for b in (1.0 - betas).tolist():
        acc *= b
        out.append(acc)
    return torch.tensor(out, dtype=torch.float64)


def edm_times(t_start: float, t_end: float, n: int, rho: float) -> np.ndarray:
    """n+1 times from t_start to t_end, EDM-ρ spaced: (a^{1/ρ} + i/n (b^{1/ρ} - a^{1/ρ}))^ρ."""
    i = np.arange(n + 1) / n
    return (t_start ** (1 / rho) + i * (t_end ** (1 / rho) - t_start ** (1 / rho))) ** rho


def strictly_decreasing_ints(ts, floor: int) -> list:
    """Round to integers, forcing strict decrease (duplicates at ``floor`` are dropped)."""
    out = []
    for t in ts:
        v = int(round(t))
        if out and v >= out[-1]:
            v = out[-1] - 1
        out.append(max(v, floor))
    dedup = []
    for v in out:
        if not dedup or v < dedup[-1]:
            dedup.append(v)
    return dedup


class Family:
    """A marginal family ``x_t = s(t)·x + S(t)·ε`` (SPEC §1 table) and its family-specific behaviour.

    ``Family("ve", sigma_max=40.0)`` builds the registered subclass named ``"ve"``; subclasses set
    ``name`` and define ``s``, ``S``, the time range and the hooks below."""

    name = ""
    prediction = "epsilon"          # what this project's networks output in this family
    ode_solver = "ddim"             # solver of the family's own deterministic sampler
    normal_training_times = False   # training times from a standard normal draw (else a uniform)
    discrete = False
    clean_time = 0.0
    params: tuple = ()              # constructor parameters (persisted by to_config)
    _registry: dict = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            Family._registry[cls.name] = cls

    def __new__(cls, name: str | None = None, **params):
        if cls is Family:
            if name not in Family._registry:
                raise ValueError(f"unknown family {name!r}; choose one of {', '.join(Family._registry)}")
            cls = Family._registry[name]
        return object.__new__(cls)

    def __init__(self, name: str | None = None, **params):
        if name is not None and name != self.name:
            raise ValueError(f"{type(self).__name__} is the {self.name!r} family, not {name!r}")
        for k, v in params.items():
            if k not in self.params:
                raise TypeError(f"family {self.name!r} has no parameter {k!r} (it has {', '.join(self.params) or 'none'})")
            setattr(self, k, v)
        self._setup()

    def _setup(self):
        """Derived state after the parameters are set."""

    def __repr__(self):
        return f"Family({self.name!r}, {self.to_json()})"

    def __eq__(self, other):
        return isinstance(other, Family) and self.to_json() == other.to_json()

    __hash__ = None

    # ----------------------------------------------------------------- marginal
    @property
    def num_train_timesteps(self) -> int:
        return 0

    t_eps = 1e-5                    # unit-interval families: t in [t_eps, 1]

    @property
    def t_min(self) -> float:
        """Smallest time the backbone may be called at."""
        return self.t_eps

    @property
    def t_max(self) -> float:
        return 1.0

    @staticmethod
    def _as_tensor(t) -> torch.Tensor:
        return torch.as_tensor(t, dtype=torch.float64)

    def s(self, t) -> torch.Tensor:
        """Signal scale s(t) (float64)."""
        raise NotImplementedError

    def S(self, t) -> torch.Tensor:
        """Noise scale S(t) = s(t)·σ(t) (float64)."""
        raise NotImplementedError

    def sigma(self, t) -> torch.Tensor:
        """σ(t) = S/s: the EDM noise level of x_t/s."""
        return self.S(t) / self.s(t)

    def time_for_sigma(self, sigma: float) -> float:
        """Inverse of σ(t): the (possibly fractional) time whose σ equals ``sigma``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- persistence
    def to_config(self) -> dict:
        """Everything needed to rebuild this family exactly (persisted next to weights)."""
        return {"name": self.name, **{k: getattr(self, k) for k in self.params}}

    @classmethod
    def from_config(cls, d: dict) -> "Family":
        d = dict(d)
        return Family(d.pop("name"), **d)

    def to_json(self) -> dict:
        """The identity recorded in token headers (compact: hashes instead of long schedules)."""
        return self.to_config()

    # ----------------------------------------------------------------- networks and training
    def precondition(self, net, x_t: torch.Tensor, t: torch.Tensor, y, sigma_data: float) -> torch.Tensor:
        """Our network's output (in ``self.prediction``) at float32 times ``t`` (B,)."""
        raise NotImplementedError

    def training_times(self, u: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Training times (float64) from a uniform ``u`` or (``normal_training_times``) a standard
        normal ``z``, increasing in their argument: low quantiles are the low-noise levels."""
        raise NotImplementedError

    def loss(self, o: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, sigma_data: float):
        """Training loss of output ``o`` for clean ``x`` noised with ``eps`` at times ``t``."""
        target = {"epsilon": eps, "velocity": eps - x, "sample": x}[self.prediction]
        return ((o - target) ** 2).mean()

    # ----------------------------------------------------------------- plans and sampling
    def plan_defaults(self) -> dict:
        """Defaults of the plan knobs left unset (t_start, t_end, t_fixed, delta_min, delta_max)."""
        raise NotImplementedError

    def ode_times(self, steps: int, rho: float = 7.0) -> list:
        """Times of the family's own deterministic sampler with ``steps`` model calls, ending clean."""
        raise NotImplementedError


class VPDiscrete(Family):
    """DDPM: s = √ā_t, S = √(1-ā_t) over integer steps 0..T-1; time -1 is clean. ε-prediction."""

    name, prediction, discrete, clean_time = "vp-discrete", "epsilon", True, -1.0
    params = ("alphas_cumprod",)

    def __init__(self, name=None, alphas_cumprod=None):
        super().__init__(name, alphas_cumprod=ddpm_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod)

    def _setup(self):
        a = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64).flatten()
        self.alphas_cumprod = a
        self._abar = torch.cat([torch.ones(1, dtype=torch.float64), a])   # index t+1 holds step t; 0 is clean

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def t_min(self) -> float:
        return 0.0

    @property
    def t_max(self) -> float:
        return float(self.num_train_timesteps - 1)

    def alpha_bar(self, t) -> torch.Tensor:
        idx = self._as_tensor(t).round().long() + 1
        if (idx < 0).any() or (idx >= len(self._abar)).any():
            raise ValueError(f"vp-discrete time out of range [-1, {self.num_train_timesteps - 1}]")
        return self._abar[idx]

    def s(self, t):
        return self.alpha_bar(t).sqrt()

    def S(self, t):
        return (1.0 - self.alpha_bar(t)).clamp_min(0).sqrt()

    def time_for_sigma(self, sigma: float) -> float:
        """The nearest integer step."""
        abar = 1.0 / (1.0 + sigma ** 2)
        return float(torch.argmin((self._abar[1:] - abar).abs()).item())

    def to_config(self) -> dict:
        return {"name": self.name, "alphas_cumprod": [float(v) for v in self.alphas_cumprod]}

    def to_json(self) -> dict:
        return {"name": self.name, "alphas_cumprod_sha256": _tensor_sha(self.alphas_cumprod),
                "num_train_timesteps": self.num_train_timesteps}

    def precondition(self, net, x_t, t, y, sigma_data):
        return net(x_t, t, y)

    def training_times(self, u, z):
        T = self.num_train_timesteps
        return (u * T).floor().clamp_max(T - 1).double()

    def plan_defaults(self) -> dict:
        T = self.num_train_timesteps
        return dict(t_start=T - 1, t_end=5, t_fixed=round(20 * T / 1000), delta_min=1, delta_max=max(2, round(18 * T / 1000)))

    def ode_times(self, steps, rho=7.0):
        ts = np.round(np.linspace(self.t_max, 0, steps)).astype(int).tolist()
        return [float(t) for t in strictly_decreasing_ints(ts, 0)] + [self.clean_time]


class VPContinuous(Family):
    """Score-SDE VP with the linear β schedule: ā(t) = exp(-½(βmax-βmin)t² - βmin·t), t in [t_eps, 1]."""

    name, prediction = "vp-continuous", "epsilon"
    params = ("beta_min", "beta_max", "t_eps")
    beta_min, beta_max, t_eps = 0.1, 20.0, 1e-5

    def alpha_bar(self, t) -> torch.Tensor:
        t = self._as_tensor(t)
        return torch.exp(-0.5 * (self.beta_max - self.beta_min) * t ** 2 - self.beta_min * t)

    def s(self, t):
        return self.alpha_bar(t).sqrt()

    def S(self, t):
        return (1.0 - self.alpha_bar(t)).clamp_min(0).sqrt()

    def time_for_sigma(self, sigma: float) -> float:
        # solve ½(βmax-βmin)t² + βmin t + ln ā = 0 for t
        a, b, c = 0.5 * (self.beta_max - self.beta_min), self.beta_min, math.log(1.0 / (1.0 + sigma ** 2))
        return float((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))

    def to_json(self) -> dict:
        return {"name": self.name, "beta_min": self.beta_min, "beta_max": self.beta_max}

    def to_config(self) -> dict:
        return self.to_json()

    def precondition(self, net, x_t, t, y, sigma_data):
        return net(x_t, 999.0 * t, y)

    def training_times(self, u, z):
        return (self.t_eps + (1 - self.t_eps) * u).double()

    def plan_defaults(self) -> dict:
        return dict(t_start=1.0, t_end=0.005, t_fixed=0.02, delta_min=0.001, delta_max=0.018)

    def ode_times(self, steps, rho=7.0):
        return np.linspace(self.t_max, self.t_eps, steps + 1).tolist()[:-1] + [self.clean_time]


class VE(Family):
    """VE / EDM (Karras et al. 2022): s = 1, S = σ = t in [σ_min, σ_max]; x̂0-prediction with EDM's
    preconditioning (Table 1: c_skip, c_out, c_in, c_noise = ¼ ln σ, scaled by 250 for the
    sinusoidal embedding), log-normal training σ and EDM's loss weighting; Heun sampler."""

    name, prediction, ode_solver, normal_training_times = "ve", "sample", "heun", True
    params = ("sigma_min", "sigma_max")
    sigma_min, sigma_max = 0.002, 80.0
    P_mean, P_std = -1.2, 1.2            # ln σ ~ N(P_mean, P_std²) in training

    @property
    def t_min(self) -> float:
        return self.sigma_min

    @property
    def t_max(self) -> float:
        return self.sigma_max

    def s(self, t):
        return torch.ones_like(self._as_tensor(t))

    def S(self, t):
        return self._as_tensor(t).clone()

    def time_for_sigma(self, sigma: float) -> float:
        return float(sigma)

    def preconditioning(self, sigma: torch.Tensor, sigma_data: float):
        """EDM's (c_skip, c_out, c_in) at noise level σ."""
        sd2 = sigma_data ** 2
        return sd2 / (sigma ** 2 + sd2), sigma * sigma_data / (sigma ** 2 + sd2).sqrt(), 1 / (sigma ** 2 + sd2).sqrt()

    def precondition(self, net, x_t, t, y, sigma_data):
        c_skip, c_out, c_in = self.preconditioning(broadcast_time(t, x_t), sigma_data)
        return c_skip * x_t + c_out * net(c_in * x_t, 250.0 * t.log(), y).float()

    def training_times(self, u, z):
        return torch.exp(self.P_mean + self.P_std * z).double()

    def loss(self, o, x, eps, t, sigma_data):
        sig = broadcast_time(t, x)
        w = (sig ** 2 + sigma_data ** 2) / (sig * sigma_data) ** 2
        return (w * (o - x) ** 2).mean()

    def plan_defaults(self) -> dict:
        return dict(t_start=self.sigma_max, t_end=0.02, t_fixed=0.2, delta_min=0.01, delta_max=0.18)

    def ode_times(self, steps, rho=7.0):
        if steps == 1:
            return [self.sigma_max, 0.0]
        return edm_times(self.sigma_max, self.sigma_min, steps - 1, rho).tolist() + [0.0]


class Consistency(VE):
    """Consistency models (Song et al. 2023) on the VE marginal (SPEC §1): the network is the
    consistency function f(x_t, σ) = c_skip(σ)·x_t + c_out(σ)·F(c_in(σ)·x_t, ¼ln σ) with the
    boundary parametrisation c_skip = σ_d²/((σ-σ_min)² + σ_d²), c_out = (σ-σ_min)·σ_d/√(σ² + σ_d²),
    so f(x, σ_min) = x exactly; its output is x̂0 (ε̂ by the generic conversion). Its own sampler is
    the multistep consistency sampler (``sampler_times``, ``chain.consistency_sample``); trained by
    consistency training from a diffusion model (ECT, Geng et al. 2024: ``training_loss``)."""

    name = "consistency"
    # ECT's training σ distribution: ln σ ~ N(-1.1, 2.0²)
    P_mean, P_std = -1.1, 2.0

    def preconditioning(self, sigma: torch.Tensor, sigma_data: float):
        """(c_skip, c_out, c_in) with the boundary condition at σ_min."""
        sd2 = sigma_data ** 2
        return (sd2 / ((sigma - self.sigma_min) ** 2 + sd2), (sigma - self.sigma_min) * sigma_data / (sigma ** 2 + sd2).sqrt(),
                1 / (sigma ** 2 + sd2).sqrt())

    def sampler_times(self, steps: int, rho: float = 7.0) -> list:
        """σ of the multistep consistency sampler's ``steps`` calls: σ_max, then EDM-ρ spaced
        intermediate levels (σ_max first; the last call's output is the sample)."""
        return edm_times(self.sigma_max, self.sigma_min, steps, rho).tolist()[:steps]

    def training_loss(self, backbone, x, y, gen, step: int = 0, total_steps: int = 1, halvings: float = 8.0):
        """ECT's consistency-training loss at one training step (a function of progress):
        ``d(f(x + tε, t), sg f(x + rε, r)) / (t - r)`` with the same ε, t ~ log-normal and
        r = max(t·(1 - Δ(t)), σ_min), Δ(t) = (1 + 8·sigmoid(-t))·2^(-H·progress), H = ``halvings``
        (ECT: 8): at the start r = σ_min,
        where f is the identity, so the loss is the denoising loss of the diffusion model it starts
        from; then r approaches t. d = pseudo-Huber with c = 0.00054·√dim (Song & Dhariwal 2023)."""
        B = x.shape[0]
        eps = torch.randn(x.shape, generator=gen, device="cpu").to(x.device)
        z = torch.randn(B, generator=gen).double()
        t = torch.exp(self.P_mean + self.P_std * z).clamp(self.sigma_min * 1.5, self.sigma_max)
        progress = min(1.0, step / max(1, total_steps))
        delta = (1 + 8 * torch.sigmoid(-t)) * 2.0 ** (-halvings * progress)
        r = (t * (1 - delta)).clamp_min(self.sigma_min)
        f_t = backbone.raw(x + broadcast_time(t, x) * eps, t, y)
        with torch.no_grad():
            f_r = backbone.raw(x + broadcast_time(r, x) * eps, r, y)
        c = 0.00054 * math.sqrt(x[0].numel())
        dist = (((f_t - f_r) ** 2).flatten(1).sum(1) + c * c).sqrt() - c
        return (dist / (t - r).float().to(dist.device)).mean()


class Flow(Family):
    """Rectified flow: x_t = (1-t)x + tε, t in [t_eps, 1]; velocity v = ε - x; logit-normal training
    times (SD3), kept off the endpoints."""

    name, prediction, normal_training_times = "flow", "velocity", True
    params = ("t_eps",)
    t_eps = 1e-5

    def s(self, t):
        return 1.0 - self._as_tensor(t)

    def S(self, t):
        return self._as_tensor(t).clone()

    def time_for_sigma(self, sigma: float) -> float:
        return float(sigma / (1.0 + sigma))

    def to_json(self) -> dict:
        return {"name": self.name}

    def to_config(self) -> dict:
        return self.to_json()

    def precondition(self, net, x_t, t, y, sigma_data):
        return net(x_t, 1000.0 * t, y)

    def training_times(self, u, z):
        return torch.sigmoid(z).clamp(1e-4, 1 - 1e-4).double()

    def plan_defaults(self) -> dict:
        return dict(t_start=1.0, t_end=0.005, t_fixed=0.15, delta_min=0.008, delta_max=0.14)

    def ode_times(self, steps, rho=7.0):
        return np.linspace(self.t_max, 0.0, steps + 1).tolist()[:-1] + [self.clean_time]


FAMILIES = tuple(Family._registry)


def _tensor_sha(t: torch.Tensor) -> str:
    import hashlib
    return hashlib.sha256(torch.as_tensor(t, dtype=torch.float64).numpy().tobytes()).hexdigest()[:16]


def output_coefficients(prediction: str, s, S) -> tuple:
    """(a, b) with model output ``o = a·x + b·ε`` for a prediction type (SPEC §1)."""
    if prediction == "epsilon":
        return 0.0, 1.0
    if prediction == "sample":
        return 1.0, 0.0
    if prediction == "velocity":      # flow matching v = ε - x
        return -1.0, 1.0
    if prediction == "v":             # Salimans & Ho v = s·ε - S·x
        return -S, s
    raise ValueError(f"unknown prediction type {prediction!r}; choose one of {', '.join(PREDICTIONS)}")


def convert_output(o: torch.Tensor, x_t: torch.Tensor, s, S, prediction: str):
    """Solve ``o = a·x + b·ε`` and ``x_t = s·x + S·ε`` for (x̂0, ε̂) (SPEC §1, gDDCM Eq. 16).

    ``s`` and ``S`` are floats or tensors broadcastable to ``x_t`` (per-sample times).
    Returns ``(xh, eh)`` in the dtype of ``o``.
    """
    a, b = output_coefficients(prediction, s, S)
    det = a * S - b * s
    xh = (S * o - b * x_t) / det
    eh = (a * x_t - s * o) / det
    return xh, eh


def eps_from_x0(x_t: torch.Tensor, xh: torch.Tensor, s, S) -> torch.Tensor:
    """ε̂ that keeps the marginal x_t = s·x̂0 + S·ε̂ (SPEC §1); ``s``, ``S`` scalars or per-sample (B,)."""
    return (x_t - broadcast_time(s, x_t) * xh) / broadcast_time(S, x_t)


def broadcast_time(v, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sample (B,) coefficient shaped to broadcast against ``like`` (B, ...)."""
    v = torch.as_tensor(v, dtype=torch.float32, device=like.device)
    if v.ndim == 0:
        return v
    return v.reshape(-1, *([1] * (like.ndim - 1)))
