"""Step plans: the (t_from, t_den, t_to) triples the chain walks (SPEC §3).

A plan is computed from a ``PlanConfig`` and a ``Family`` alone and stored, as data, in every
token header, so a decoder never recomputes it from possibly different code.

- ``trajectory`` (gDDCM Algorithm 1, 0 < p < 1): net times EDM-ρ spaced from ``t_start`` to
  ``t_end``; each step denoises by Δ_n = (t_{n-1} - t_n)/p and re-noises to t_n.
- ``fixed-point`` (Algorithm 2, p = 0): every step is (T_s, T_s - Δ, T_s); Δ runs coarse to fine
  over P intervals (Eq. 9) with step counts from Eq. 10 (continuous families) or Eqs. 12-13
  (``vp-discrete``), rounded by largest remainders so they sum to exactly N.
- ``ddcm`` (the official DDCM baseline): DDIM with η = 1 over N timesteps evenly spaced from
  T-1 to 0 (``vp-discrete`` only). Its re-noising coefficient is DDIM's σ, not a family time, so
  ``StepCoefficients`` for it come from ā directly.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .families import Family, edm_times, strictly_decreasing_ints

PLAN_KINDS = ("fixed-point", "trajectory", "ddcm")


@dataclass
class PlanConfig:
    """Everything that determines a plan. Defaults are the project's documented choices."""

    kind: str = "fixed-point"
    num_steps: int = 100                 # N: tokens per block (not counting the init token)
    p: float = 0.0                       # backtrack parameter; 0 for fixed-point, (0,1) for trajectory
    t_start: float | None = None         # trajectory: first time (T_r); default family t_max
    t_end: float | None = None           # trajectory: last net time (T_t); default family t_min-ish
    rho: float = 7.0                     # EDM spacing exponent (trajectory, and Eq. 10/13)
    t_fixed: float | None = None         # fixed-point: T_s; default per family (see _defaults)
    delta_min: float | None = None       # fixed-point: finest Δ
    delta_max: float | None = None       # fixed-point: coarsest Δ
    intervals: int = 16                  # fixed-point P (continuous families; vp-discrete uses Δmax-Δmin)
    # σ_max of Eq. 10/13: the finest interval gets this many times the coarsest's share of steps.
    # Default from a small search on 16 CIFAR-10 `val` images (linear-Gaussian backbone, vp-discrete,
    # N=300, K=1024, T_s=20, Δ 18→1): σ_max = 1 / 5 / 10 / 20 / 80 gave 28.4 / 29.6 / 29.6 / 29.4 / 28.0 dB.
    sigma_max_r: float = 10.0
    # fixed-point only (ours, not in the paper): spend the first M of the N steps descending from
    # t_start to T_s as an Algorithm 1 trajectory with backtrack descent_p, then run the fixed point
    # on the remaining N - M. Algorithm 2 starts at T_s from the one-token init, where x̂0 is near the
    # dataset mean and climbs slowly (README: fixed-point start); a short descent gets there in a
    # fraction of the steps. 0 = Algorithm 2 as published.
    descent_steps: int = 0
    descent_p: float = 0.35
    final_steps: int = 1                 # deterministic ODE steps from the plan's last time to clean
    final_solver: str = "ddim"           # "ddim" (first order) or "heun"

    def validate(self):
        if self.kind not in PLAN_KINDS:
            raise ValueError(f"unknown plan {self.kind!r}; choose one of {', '.join(PLAN_KINDS)}")
        if self.num_steps < 1:
            raise ValueError(f"--num-steps must be >= 1, got {self.num_steps}")
        if self.kind == "trajectory":
            if self.p >= 1.0:
                raise ValueError("p = 1 is a plain deterministic ODE step and carries no information: "
                                 "it cannot encode. Use 0 < p < 1 with --plan trajectory "
                                 "(or --plan fixed-point for p = 0).")
            if self.p <= 0.0:
                raise ValueError("--plan trajectory needs 0 < p < 1; p = 0 is --plan fixed-point")
        if self.kind == "fixed-point" and self.p != 0.0:
            raise ValueError(f"--plan fixed-point is p = 0; got --p {self.p}. Use --plan trajectory for p > 0")
        if self.descent_steps:
            if self.kind != "fixed-point":
                raise ValueError("--descent-steps belongs to --plan fixed-point (a trajectory already descends)")
            if not 0 < self.descent_steps < self.num_steps:
                raise ValueError(f"--descent-steps must lie in [0, --num-steps) = [0, {self.num_steps}), "
                                 f"got {self.descent_steps}: the fixed point needs at least one step")
            if not 0.0 < self.descent_p < 1.0:
                raise ValueError(f"--descent-p must lie in (0, 1), got {self.descent_p}")
        if self.final_solver not in ("ddim", "heun"):
            raise ValueError(f"unknown final solver {self.final_solver!r}; use ddim or heun")
        if self.final_steps < 1:
            raise ValueError("--final-steps must be >= 1")


@dataclass
class Plan:
    """A resolved plan: ``steps`` are (t_from, t_den, t_to) triples; ``final_times`` the ODE
    times from the last ``t_to`` down to clean (inclusive at both ends)."""

    kind: str
    steps: list
    final_times: list
    final_solver: str = "ddim"
    config: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.steps)

    @property
    def t_initial(self) -> float:
        return self.steps[0][0]

    def to_json(self) -> dict:
        return {"kind": self.kind, "steps": [list(map(float, s)) for s in self.steps],
                "final_times": [float(t) for t in self.final_times], "final_solver": self.final_solver,
                "config": self.config}

    @classmethod
    def from_json(cls, d: dict) -> "Plan":
        return cls(kind=d["kind"], steps=[tuple(s) for s in d["steps"]], final_times=list(d["final_times"]),
                   final_solver=d.get("final_solver", "ddim"), config=d.get("config", {}))

    def coefficients(self, family: Family) -> list["StepCoefficients"]:
        """Per-step (s(t_to), S(t_to), S(t_den)) of Eq. 22 (float)."""
        out = []
        for (t_from, t_den, t_to) in self.steps:
            s_to, S_to = float(family.s(t_to)), float(family.S(t_to))
            if self.kind == "ddcm":
                # DDIM η=1: x_prev = √ā_prev·xh + √(1-ā_prev-σ²)·eh + σ·c
                a_t, a_prev = float(family.alpha_bar(t_from)), float(family.alpha_bar(t_to))
                var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
                S_den = math.sqrt(max(1 - a_prev - var, 0.0))
            else:
                S_den = float(family.S(t_den))
            out.append(StepCoefficients(t_from=t_from, s_to=s_to, S_to=S_to, S_den=S_den, t_to=t_to))
        return out


@dataclass
class StepCoefficients:
    """Eq. 22: ``state = s_to·xh + S_den·eh + noise_scale·c`` with noise_scale = √(S_to² - S_den²)."""

    t_from: float
    s_to: float
    S_to: float
    S_den: float
    t_to: float                    # the time of the next backbone call (the jacobian selection linearises there)

    @property
    def noise_scale(self) -> float:
        return math.sqrt(max(self.S_to ** 2 - self.S_den ** 2, 0.0))

    def denoised(self, xh, eh):
        """Eq. 22 without its codebook term: ``s_to·xh + S_den·eh``."""
        return self.s_to * xh + self.S_den * eh


# ------------------------------------------------------------------------------------------
def largest_remainder(weights, total: int) -> list[int]:
    """Integers proportional to ``weights`` summing to exactly ``total`` (Hamilton's method).
    Replaces the paper's ⌊·+0.5⌋ in Eq. 10/13, which does not sum to N."""
    w = np.asarray(weights, dtype=np.float64)
    if total == 0:
        return [0] * len(w)
    quota = w / w.sum() * total
    counts = np.floor(quota).astype(int)
    rest = total - counts.sum()
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts.tolist()


def _defaults(cfg: PlanConfig, family: Family) -> dict:
    """The family's defaults for the knobs left unset (documented in the README)."""
    d = family.plan_defaults()
    for k, v in d.items():
        if getattr(cfg, k) is not None:
            d[k] = getattr(cfg, k)
    return d


def _final_times(family: Family, t_last: float, steps: int, rho: float) -> list:
    """ODE times from t_last to clean: EDM-ρ spaced, ending exactly at the clean time."""
    if steps == 1:
        return [t_last, family.clean_time]
    t_lo = family.t_min if family.name != "vp-discrete" else 0.0
    if t_last <= t_lo:
        return [t_last, family.clean_time]
    ts = edm_times(t_last, max(t_lo, 1e-3 if not family.discrete else 0.0), steps - 1, rho).tolist()
    if family.discrete:
        ts = strictly_decreasing_ints(ts, floor=0)
    return ts + [family.clean_time]


def _fit_integer_times(ts: np.ndarray, t0: int, t1: int) -> list:
    """Round N+1 descending times to distinct integers from t0 to t1: each one is clamped into
    its feasible window [t1 + (N - n), t0 - n] (room for the steps after and before it), then
    strict decrease is enforced; dense EDM-ρ spacing near t1 gets spread out as little as needed."""
    N = len(ts) - 1
    out = []
    for n, t in enumerate(ts):
        v = min(max(int(round(t)), t1 + (N - n)), t0 - n)
        if out:
            v = min(v, out[-1] - 1)
        out.append(v)
    return out


def build_plan(cfg: PlanConfig, family: Family) -> Plan:
    """Resolve a PlanConfig against a family into a Plan (SPEC §3)."""
    cfg.validate()
    d = _defaults(cfg, family)
    clean = family.clean_time
    N = cfg.num_steps
    resolved = asdict(cfg)
    resolved.update(d)

    if cfg.kind == "ddcm":
        if family.name != "vp-discrete":
            raise ValueError("--plan ddcm is the DDPM-only DDCM baseline; it needs a vp-discrete backbone "
                             f"(this backbone is {family.name}). Use --plan fixed-point or trajectory.")
        T = family.num_train_timesteps
        if N > T:
            raise ValueError(f"--plan ddcm allows at most T={T} steps, got {N}")
        ts = np.round(np.linspace(T - 1, 0, N)).astype(int).tolist()
        ts = strictly_decreasing_ints(ts, floor=0)
        steps = []
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            steps.append((float(t), float(t_prev), float(t_prev)))
        return Plan("ddcm", steps, [clean, clean], "ddim", resolved)

    if cfg.kind == "trajectory":
        t0, t1 = float(d["t_start"]), float(d["t_end"])
        if not (family.t_min <= t1 < t0 <= family.t_max):
            raise ValueError(f"trajectory needs {family.t_min} <= --t-end < --t-start <= {family.t_max} "
                             f"for {family.name}; got t_start={t0}, t_end={t1}")
        ts = edm_times(t0, t1, N, cfg.rho)
        if family.discrete:
            if N > t0 - t1:
                raise ValueError(f"{N} trajectory steps do not fit between integer times {t0} and {t1}")
            ts = np.array(_fit_integer_times(ts, int(t0), int(t1)), dtype=float)
        steps = []
        for n in range(1, N + 1):
            t_from, t_to = float(ts[n - 1]), float(ts[n])
            delta = (t_from - t_to) / cfg.p
            t_den = t_from - delta
            if t_den < family.t_min:
                t_den = clean
            elif family.discrete:
                t_den = float(min(round(t_den), t_to))
            steps.append((t_from, float(t_den), t_to))
        final = _final_times(family, float(ts[-1]), cfg.final_steps, cfg.rho)
        return Plan("trajectory", steps, final, cfg.final_solver, resolved)

    # fixed-point (p = 0), coarse to fine
    Ts = float(d["t_fixed"])
    dmin, dmax = float(d["delta_min"]), float(d["delta_max"])
    if not (family.t_min < Ts <= family.t_max):
        raise ValueError(f"--t-fixed must lie in ({family.t_min}, {family.t_max}] for {family.name}, got {Ts}")
    if not (0 < dmin <= dmax):
        raise ValueError(f"need 0 < --delta-min <= --delta-max, got {dmin}, {dmax}")
    rho, smax = cfg.rho, cfg.sigma_max_r
    if family.discrete:
        # Eqs. 12-13: integer Δ = Δmin + k, k = 0..P with P = Δmax - Δmin; m_k places Δ on Eq. 9's scale
        dmin_i, dmax_i = int(round(dmin)), int(round(dmax))
        P = dmax_i - dmin_i
        deltas = [dmax_i - j for j in range(P + 1)]            # coarse -> fine
        if P == 0:
            m = [float(0)]
        else:
            m = [P * math.log(dmax_i / dl) / math.log(dmax_i / dmin_i) for dl in deltas]
        Pn = max(P, 1)
        weights = [(1 + mk / Pn * (smax ** (1 / rho) - 1)) ** rho for mk in m]
    else:
        P = cfg.intervals
        ks = list(range(P))                                    # k = 0 is Δmax: coarse -> fine
        deltas = [dmin ** (k / P) * dmax ** ((P - k) / P) for k in ks]
        weights = [(1 + k / P * (smax ** (1 / rho) - 1)) ** rho for k in ks]
    steps = []
    if cfg.descent_steps:
        t0 = float(d["t_start"])
        if not Ts < t0 <= family.t_max:
            raise ValueError(f"the descent runs from --t-start down to --t-fixed: need {Ts} < t_start <= "
                             f"{family.t_max}, got t_start={t0}")
        if family.discrete and cfg.descent_steps > t0 - Ts:
            raise ValueError(f"{cfg.descent_steps} descent steps do not fit between integer times {t0:g} and "
                             f"T_s={Ts:g}: use at most {int(t0 - Ts)}")
        descent = build_plan(PlanConfig(kind="trajectory", num_steps=cfg.descent_steps, p=cfg.descent_p,
                                        t_start=t0, t_end=Ts, rho=rho), family)
        t_from, t_den, _ = descent.steps[-1]
        steps += descent.steps[:-1] + [(t_from, t_den, Ts)]  # land exactly on T_s (EDM spacing rounds)
        N -= cfg.descent_steps
    counts = largest_remainder(weights, N)
    for delta, count in zip(deltas, counts):
        t_den = Ts - delta
        if t_den < family.t_min:
            t_den = clean
        for _ in range(count):
            steps.append((Ts, float(t_den), Ts))
    resolved["interval_deltas"] = [float(x) for x in deltas]
    resolved["interval_counts"] = counts
    final = _final_times(family, Ts, cfg.final_steps, cfg.rho)
    return Plan("fixed-point", steps, final, cfg.final_solver, resolved)


def ode_times(family: Family, steps: int, rho: float = 7.0) -> list:
    """The times of a backbone's own deterministic sampler with ``steps`` model calls, from the
    family's largest time to clean (``Family.ode_times``: DDIM's evenly spaced integer steps for
    ``vp-discrete``, EDM's ρ-spaced σ for ``ve``, uniform t for ``flow`` and ``vp-continuous``)."""
    if steps < 1:
        raise ValueError("the ODE sampler needs at least one step")
    return family.ode_times(steps, rho)
