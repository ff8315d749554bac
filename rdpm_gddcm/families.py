"""Marginal families and output conversion (SPEC §1; gDDCM Eq. 8 and Eq. 16).

Every supported diffusion model has the marginal ``x_t = s(t)·x + S(t)·ε`` with ``S`` increasing
in ``t``. A family knows ``s`` and ``S``, its valid time range and its "clean" time (where
``S = 0``). Times are plain floats (integers for ``vp-discrete``) so plans can be stored as data.

``convert_output`` turns any model output ``o = a·x + b·ε`` into both predictions (x̂0, ε̂):
one function for ε-, x̂0-, velocity- and v-prediction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

FAMILIES = ("vp-discrete", "vp-continuous", "ve", "flow")
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


@dataclass
class Family:
    """A marginal family ``x_t = s(t)·x + S(t)·ε`` (SPEC §1 table).

    ``name`` is one of FAMILIES. ``vp-discrete`` needs ``alphas_cumprod`` (ā over integer
    steps 0..T-1; time -1 is clean). ``vp-continuous`` uses the score-SDE linear β schedule.
    ``ve`` has t ≡ σ. ``flow`` has x_t = (1-t)x + tε.
    """

    name: str
    alphas_cumprod: torch.Tensor | None = None      # vp-discrete only, float64 (T,)
    beta_min: float = 0.1                           # vp-continuous
    beta_max: float = 20.0                          # vp-continuous
    sigma_min: float = 0.002                        # ve
    sigma_max: float = 80.0                         # ve
    t_eps: float = 1e-5                             # smallest usable time of continuous families
    _abar: torch.Tensor = field(init=False, repr=False, default=None)

    def __post_init__(self):
        if self.name not in FAMILIES:
            raise ValueError(f"unknown family {self.name!r}; choose one of {', '.join(FAMILIES)}")
        if self.name == "vp-discrete":
            if self.alphas_cumprod is None:
                self.alphas_cumprod = ddpm_alphas_cumprod()
            a = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64).flatten()
            # index 0 holds the clean time -1 (ā = 1), index t+1 holds step t
            self._abar = torch.cat([torch.ones(1, dtype=torch.float64), a])

    # ----------------------------------------------------------------- time range
    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod) if self.name == "vp-discrete" else 0

    @property
    def clean_time(self) -> float:
        """The time with S = 0 (the data itself)."""
        return -1.0 if self.name == "vp-discrete" else 0.0

    @property
    def t_min(self) -> float:
        """Smallest time the backbone may be called at."""
        return {"vp-discrete": 0.0, "vp-continuous": self.t_eps, "ve": self.sigma_min,
                "flow": self.t_eps}[self.name]

    @property
    def t_max(self) -> float:
        return {"vp-discrete": float(self.num_train_timesteps - 1), "vp-continuous": 1.0,
                "ve": self.sigma_max, "flow": 1.0}[self.name]

    @property
    def discrete(self) -> bool:
        return self.name == "vp-discrete"

    # ----------------------------------------------------------------- s(t), S(t)
    def _as_tensor(self, t) -> torch.Tensor:
        return torch.as_tensor(t, dtype=torch.float64)

    def alpha_bar(self, t) -> torch.Tensor:
        """ā(t) for the VP families (float64)."""
        t = self._as_tensor(t)
        if self.name == "vp-discrete":
            idx = t.round().long() + 1
            if (idx < 0).any() or (idx >= len(self._abar)).any():
                raise ValueError(f"vp-discrete time out of range [-1, {self.num_train_timesteps - 1}]")
            return self._abar[idx]
        if self.name == "vp-continuous":
            return torch.exp(-0.5 * (self.beta_max - self.beta_min) * t ** 2 - self.beta_min * t)
        raise ValueError(f"alpha_bar is defined for VP families only, not {self.name}")

    def s(self, t) -> torch.Tensor:
        """Signal scale s(t) (float64)."""
        t = self._as_tensor(t)
        if self.name in ("vp-discrete", "vp-continuous"):
            return self.alpha_bar(t).sqrt()
        if self.name == "ve":
            return torch.ones_like(t)
        return 1.0 - t

    def S(self, t) -> torch.Tensor:
        """Noise scale S(t) = s(t)·σ(t) (float64)."""
        t = self._as_tensor(t)
        if self.name in ("vp-discrete", "vp-continuous"):
            return (1.0 - self.alpha_bar(t)).clamp_min(0).sqrt()
        return t.clone()

    def sigma(self, t) -> torch.Tensor:
        """σ(t) = S/s: the EDM noise level of x_t/s."""
        return self.S(t) / self.s(t)

    def time_for_sigma(self, sigma: float) -> float:
        """Inverse of σ(t): the (possibly fractional) time whose σ equals ``sigma``.
        For vp-discrete the nearest integer step is returned."""
        if self.name == "ve":
            return float(sigma)
        if self.name == "flow":
            return float(sigma / (1.0 + sigma))
        abar = 1.0 / (1.0 + sigma ** 2)
        if self.name == "vp-discrete":
            return float(torch.argmin((self._abar[1:] - abar).abs()).item())
        # vp-continuous: solve ½(βmax-βmin)t² + βmin t + ln ā = 0 for t
        a, b, c = 0.5 * (self.beta_max - self.beta_min), self.beta_min, math.log(abar)
        return float((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))

    def to_config(self) -> dict:
        """Everything needed to rebuild this family exactly (persisted next to weights)."""
        d = {"name": self.name}
        if self.name == "vp-discrete":
            d["alphas_cumprod"] = [float(v) for v in self.alphas_cumprod]
        elif self.name == "vp-continuous":
            d.update(beta_min=self.beta_min, beta_max=self.beta_max)
        elif self.name == "ve":
            d.update(sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        return d

    @classmethod
    def from_config(cls, d: dict) -> "Family":
        d = dict(d)
        if "alphas_cumprod" in d:
            d["alphas_cumprod"] = torch.tensor(d["alphas_cumprod"], dtype=torch.float64)
        return cls(**d)

    def to_json(self) -> dict:
        d = {"name": self.name}
        if self.name == "vp-discrete":
            d["alphas_cumprod_sha256"] = _tensor_sha(self.alphas_cumprod)
            d["num_train_timesteps"] = self.num_train_timesteps
        elif self.name == "vp-continuous":
            d.update(beta_min=self.beta_min, beta_max=self.beta_max)
        elif self.name == "ve":
            d.update(sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        return d


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


def broadcast_time(v, like: torch.Tensor) -> torch.Tensor:
    """A scalar or per-sample (B,) coefficient shaped to broadcast against ``like`` (B, ...)."""
    v = torch.as_tensor(v, dtype=torch.float32, device=like.device)
    if v.ndim == 0:
        return v
    return v.reshape(-1, *([1] * (like.ndim - 1)))
