"""Frozen diffusion backbones behind one interface (DESIGN "three swappable parts", SPEC §1).

``backbone.predict(x_t, t, y) -> (xh, eh)``: the clean prediction x̂0 and the noise prediction ε̂,
float32, for a scalar time ``t`` (or per-sample (B,) times) in the backbone's family units.
Every backbone also has ``family``, ``latent_shape``, ``num_classes`` (0: unconditional) and
``identity()`` (name + content hash, stored in token headers).

Adapters:
- ``NetworkBackbone``: the project's own networks (VP ε-pred, EDM x̂0 with preconditioning,
  flow velocity), saved as ``backbone.safetensors`` + ``backbone.json``.
- ``DiffusersUNetBackbone``: diffusers ``UNet2DModel`` + DDPM scheduler config (the
  google/ddpm-cifar10-32 layout) from a local directory or hub id.
- ``DiffusersDiTBackbone``: diffusers ``DiTTransformer2DModel`` (learned-σ channels split off).
- ``EmpiricalBackbone``: the exact posterior mean of a finite dataset (no training).
- ``LinearGaussianBackbone``: the posterior mean under a Gaussian fitted to a dataset's mean and
  covariance (the Wiener filter; no training; the floor every trained backbone must beat).
- ``GuidedBackbone``: classifier-free guidance around any conditional backbone.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .families import Family, broadcast_time, convert_output, ddpm_alphas_cumprod, eps_from_x0
from .networks import UNet, UNetConfig

FORMAT_VERSION = 1


def tensors_sha256(tensors) -> str:
    """Content hash of an iterable of tensors (order matters), first 16 hex chars."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d: flatten first
    return h.hexdigest()[:16]


class Backbone(torch.nn.Module):
    """Base class. Subclasses implement ``_predict(x_t, t_tensor (B,), y) -> (xh, eh)``."""

    family: Family
    latent_shape: tuple
    num_classes: int = 0
    name: str = "backbone"
    has_null_class: bool = True      # label == num_classes means "no class" (CFG)

    def __init__(self):
        super().__init__()
        self.autocast_dtype = None          # e.g. torch.bfloat16 for the network's forward
        self.clip_sample = None             # clamp x̂0 to [-c, c] (pixel-space models; diffusers' clip_sample)
        self._hash = None

    @property
    def null_class(self) -> int:
        return self.num_classes

    def _labels(self, y, B, device):
        if self.num_classes == 0:
            return None
        if y is None:
            return torch.full((B,), self.null_class, dtype=torch.long, device=device)
        y = torch.as_tensor(y, device=device).long()
        if y.ndim == 0:
            y = y.expand(B)
        if ((y < 0) | (y > self.num_classes)).any():
            raise ValueError(f"class labels must lie in [0, {self.num_classes}] ({self.num_classes} = null class)")
        return y

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t, y=None):
        """(x̂0, ε̂) at time t (SPEC §1), without autograd."""
        return self._predict_both(x_t, t, y)

    def x0_pullback(self, x_t: torch.Tensor, t, target: torch.Tensor, y=None) -> torch.Tensor:
        """J(x_t)ᵀ (target - x̂0(x_t)), J = ∂x̂0/∂x_t: the direction in which moving x_t reduces
        ‖target - x̂0‖² fastest (half its negative gradient). One forward and one backward pass
        with autograd on the input only; used by the ``jacobian`` selection (SPEC §4 note)."""
        with torch.enable_grad():
            x = x_t.detach().float().requires_grad_(True)
            xh, _ = self._predict_both(x, t, y)
            residual = (target.float() - xh).detach()
            (g,) = torch.autograd.grad(xh, x, grad_outputs=residual)
        return g

    def _predict_both(self, x_t: torch.Tensor, t, y=None):
        B = x_t.shape[0]
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim == 0:
            t = t.expand(B)
        xh, eh = self._predict(x_t.float(), t, self._labels(y, B, x_t.device))
        if self.clip_sample:
            # DDPM/DDIM's x̂0 clipping for data known to lie in [-c, c]; ε̂ is recomputed so that
            # x_t = s·x̂0 + S·ε̂ still holds (SPEC §1 marginal)
            xh = xh.clamp(-self.clip_sample, self.clip_sample)
            eh = eps_from_x0(x_t.float(), xh, self.family.s(t), self.family.S(t))
        return xh, eh

    def set_precision(self, requested: str, device, batch: int = 16):
        """Resolve ``--mixed-precision`` for this network (``precision.resolve_precision``; the
        CPU timing probe is one ``predict`` at a mid noise level) and run in it from now on."""
        from .precision import resolve_precision

        def probe(dtype):
            self.autocast_dtype = dtype
            t = self.family.t_min + 0.5 * (self.family.t_max - self.family.t_min)
            if self.family.discrete:
                t = float(round(t))
            self.predict(torch.zeros(batch, *self.latent_shape, device=device), t)

        key = f"backbone:{type(self).__name__}:{self.name}:{tuple(self.latent_shape)}:" \
              f"{sum(p.numel() for p in self.parameters())}:{batch}"
        return self.use_precision(resolve_precision(requested, device, probe, key))

    def use_precision(self, precision):
        """Run in an already resolved ``Precision`` from now on (e.g. the one all processes share)."""
        self.precision = precision
        self.autocast_dtype = precision.dtype
        return self.precision

    def _autocast(self, device):
        dev = torch.device(device).type
        return torch.autocast(dev, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def weights_hash(self) -> str:
        if self._hash is None:
            self._hash = tensors_sha256(v for _, v in sorted(self.state_dict().items()))
        return self._hash

    def identity(self) -> dict:
        return {"name": self.name, "sha256": self.weights_hash(), "family": self.family.to_json(),
                "latent_shape": list(self.latent_shape), "num_classes": self.num_classes}


# ---------------------------------------------------------------------------------- own networks
class NetworkBackbone(Backbone):
    """The project's U-Net with its family's preconditioning and prediction type
    (``Family.precondition``: ε for VP, EDM's x̂0 for VE, velocity for flow); σ_data from the config."""

    def __init__(self, net: UNet, family: Family, sigma_data: float = 0.5, name: str = "rdpm-unet",
                 config: dict | None = None):
        super().__init__()
        self.net = net
        self.family = family
        self.sigma_data = sigma_data
        self.latent_shape = (net.cfg.in_channels, net.cfg.image_size, net.cfg.image_size)
        self.num_classes = net.cfg.num_classes
        self.prediction = family.prediction
        self.name = name
        self.config = config or {}

    def raw(self, x_t, t: torch.Tensor, y):
        """Network output ``o`` (in the family's prediction type) with the family's
        preconditioning (``Family.precondition``); differentiable (used by training)."""
        t32 = t.to(device=x_t.device, dtype=torch.float32)
        with self._autocast(x_t.device):
            o = self.family.precondition(self.net, x_t, t32, y, self.sigma_data)
        return o.float()

    def _predict(self, x_t, t, y):
        o = self.raw(x_t, t, y)
        s = broadcast_time(self.family.s(t), x_t)
        S = broadcast_time(self.family.S(t), x_t)
        return convert_output(o, x_t, s, S, self.prediction)

    # ---- persistence: backbone.safetensors + backbone.json
    def save(self, directory, extra: dict | None = None, dtype=torch.float16):
        from safetensors.torch import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"format_version": FORMAT_VERSION, "type": "rdpm-unet", "family": self.family.name,
                "family_config": self.family.to_config(), "prediction": self.prediction,
                "sigma_data": self.sigma_data, "network": self.net.cfg.to_json(), "name": self.name,
                "clip_sample": self.clip_sample, **(extra or {})}
        sd = {k: v.detach().to(dtype).contiguous() for k, v in self.net.state_dict().items()}
        write_backbone_files(d, lambda path: save_file(sd, str(path)), meta)


def write_backbone_files(directory, write_weights, meta: dict):
    """backbone.safetensors (``write_weights(path)``) then backbone.json, each replaced atomically, so
    a reader never sees a half-written file (files.atomic_path)."""
    from .files import atomic_path
    d = Path(directory)
    with atomic_path(d / "backbone.json") as tmp_json, atomic_path(d / "backbone.safetensors") as tmp_weights:
        write_weights(tmp_weights)
        tmp_json.write_text(json.dumps(meta, indent=2))


def family_from_meta(meta: dict) -> Family:
    if "family_config" in meta:
        return Family.from_config(meta["family_config"])
    fam = meta["family"]
    if fam == "vp-discrete":
        ns = meta.get("noise_schedule", {})
        abar = ddpm_alphas_cumprod(ns.get("num_train_timesteps", 1000), ns.get("beta_start", 1e-4),
                                   ns.get("beta_end", 0.02), ns.get("schedule", "linear"))
        return Family("vp-discrete", alphas_cumprod=abar)
    if fam == "ve":
        return Family("ve", sigma_min=meta.get("sigma_min", 0.002), sigma_max=meta.get("sigma_max", 80.0))
    return Family(fam)


def load_network_backbone(directory, device="cpu") -> NetworkBackbone:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    d = Path(directory)
    jf, wf = d / "backbone.json", d / "backbone.safetensors"
    if not jf.exists() or not wf.exists():
        raise FileNotFoundError(f"no backbone at {d}: expected backbone.json and backbone.safetensors "
                                "(written by rdpm-train-backbone); pass --backbone DIR")
    try:
        meta = json.loads(jf.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{jf} is not valid JSON ({e}); re-export the backbone") from None
    cfg = UNetConfig.from_json(meta["network"])
    net = UNet(cfg)
    try:
        state = load_file(str(wf))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{wf} is corrupt or truncated ({e}); re-export or re-download it") from None
    missing, unexpected = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"{wf} does not match the network in {jf}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    bb = NetworkBackbone(net.eval().requires_grad_(False), family_from_meta(meta),
                         sigma_data=meta.get("sigma_data", 0.5), name=meta.get("name", "rdpm-unet"), config=meta)
    # pixel-space backbones clip x̂0 to the image range unless their json says otherwise
    bb.clip_sample = meta.get("clip_sample", 1.0 if meta.get("autoencoder", {}).get("name") == "pixels" else None)
    bb.meta = meta
    return bb.to(device)


# ---------------------------------------------------------------------------------- diffusers
def _family_from_scheduler_config(cfg: dict) -> Family:
    if cfg.get("_class_name") == "CMStochasticIterativeScheduler":      # openai's cd/ct checkpoints in diffusers
        return Family("consistency", sigma_min=float(cfg.get("sigma_min", 0.002)),
                      sigma_max=float(cfg.get("sigma_max", 80.0)))
    if cfg.get("rescale_betas_zero_snr"):
        raise ValueError("schedulers with rescale_betas_zero_snr have S(T)/s(T) = inf at the last step; not supported")
    if cfg.get("trained_betas") is not None:
        betas = torch.tensor(cfg["trained_betas"], dtype=torch.float64)
        return Family("vp-discrete", alphas_cumprod=torch.cumprod(1 - betas, 0))
    abar = ddpm_alphas_cumprod(cfg.get("num_train_timesteps", 1000), cfg.get("beta_start", 1e-4),
                               cfg.get("beta_end", 0.02), cfg.get("beta_schedule", "linear"))
    return Family("vp-discrete", alphas_cumprod=abar)


def _load_scheduler_config(path: str) -> dict:
    p = Path(path)
    for cand in (p / "scheduler" / "scheduler_config.json", p / "scheduler_config.json"):
        if cand.exists():
            return json.loads(cand.read_text())
    if p.exists():
        raise FileNotFoundError(f"no scheduler_config.json under {p} (looked in ./ and scheduler/); the "
                                "google/ddpm-cifar10-32 layout has it next to the model")
    from diffusers import DDPMScheduler                                   # hub id: users online
    return dict(_from_pretrained(DDPMScheduler, path, "scheduler").config)


def _from_pretrained(cls, path: str, sub: str):
    """A diffusers component from a local directory (``sub``/ when present, else the root) or a hub
    id: pipeline repos keep it in ``sub``/ (facebook/DiT-XL-2-256: transformer/, scheduler/, vae/),
    model-only repos at the root, so the subfolder is tried first and the root second."""
    p = Path(path)
    if p.exists():
        return cls.from_pretrained(path, subfolder=sub if (p / sub).is_dir() else None)
    try:
        return cls.from_pretrained(path, subfolder=sub)
    except (OSError, ValueError) as first:
        try:
            return cls.from_pretrained(path)
        except (OSError, ValueError) as second:
            raise FileNotFoundError(f"could not load {cls.__name__} from {path!r}: not a local directory, and the "
                                    f"hub has it neither in {sub}/ ({first}) nor at the root ({second})") from None


def _pipeline_autoencoder(path: str) -> dict:
    """The backbone's default autoencoder: a pipeline directory or hub id with a VAE (vae/)."""
    p = Path(path)
    return {"autoencoder_spec": f"hf:{path}"} if (not p.exists() or (p / "vae").is_dir()) else {}


class DiffusersUNetBackbone(Backbone):
    """diffusers ``UNet2DModel`` with its scheduler config: a DDPM scheduler makes it a vp-discrete
    backbone (ε, v or x̂0 output); ``CMStochasticIterativeScheduler`` a consistency model, whose
    network is preconditioned by the family (boundary c_skip/c_out, c_in, c_noise = 250·ln σ, the
    scheduler's ``sigma_to_t``)."""

    def __init__(self, path: str, device="cpu"):
        super().__init__()
        from diffusers import UNet2DModel
        p = Path(path)
        self.unet = _from_pretrained(UNet2DModel, path, "unet").to(device).eval().requires_grad_(False)
        sched = _load_scheduler_config(path)
        self.family = _family_from_scheduler_config(sched)
        self.sigma_data = float(sched.get("sigma_data", 0.5))
        self.prediction = self.family.prediction if self.family.name == "consistency" else \
            {"epsilon": "epsilon", "v_prediction": "v", "sample": "sample"}[sched.get("prediction_type", "epsilon")]
        if sched.get("clip_sample", False) or sched.get("clip_denoised", False):
            self.clip_sample = float(sched.get("clip_sample_range", 1.0))
        c = self.unet.config
        size = c.sample_size if isinstance(c.sample_size, int) else c.sample_size[0]
        self.latent_shape = (c.in_channels, size, size)
        self.num_classes = int(c.num_class_embeds or 0)
        self.name = f"diffusers-unet:{p.name or path}"
        # pixel models decode with `pixels`; a latent UNet2DModel pipeline brings its VAE
        self.meta = _pipeline_autoencoder(path) if c.in_channels != 3 else {}

    has_null_class = False           # diffusers class embeddings have no null row

    def _labels(self, y, B, device):
        if self.num_classes == 0:
            return None
        if y is None:
            raise ValueError(f"{self.name} is class-conditional without a null class: pass class labels "
                             "(tokenize with --conditional)")
        y = super()._labels(y, B, device)
        if (y >= self.num_classes).any():
            raise ValueError(f"{self.name} has no null class (labels must lie in [0, {self.num_classes}))")
        return y

    def _predict(self, x_t, t, y):
        with self._autocast(x_t.device):
            if self.family.name == "consistency":
                def net(x, c_noise, labels):
                    return self.unet(x, c_noise, class_labels=labels).sample
                o = self.family.precondition(net, x_t, t.to(device=x_t.device, dtype=torch.float32), y,
                                             self.sigma_data).float()
            else:
                o = self.unet(x_t, t.round().long().to(x_t.device), class_labels=y).sample.float()
        s = broadcast_time(self.family.s(t), x_t)
        S = broadcast_time(self.family.S(t), x_t)
        return convert_output(o, x_t, s, S, self.prediction)


class DiffusersDiTBackbone(Backbone):
    """diffusers ``DiTTransformer2DModel`` (class-conditional, null class = num_embeds_ada_norm)
    with its scheduler config; the learned-σ half of the output channels is dropped."""

    def __init__(self, path: str, device="cpu"):
        super().__init__()
        from diffusers import DiTTransformer2DModel
        p = Path(path)
        self.dit = _from_pretrained(DiTTransformer2DModel, path, "transformer").to(device).eval().requires_grad_(False)
        self.family = _family_from_scheduler_config(_load_scheduler_config(path))
        c = self.dit.config
        self.latent_shape = (c.in_channels, c.sample_size, c.sample_size)
        self.num_classes = int(c.num_embeds_ada_norm)
        self.name = f"diffusers-dit:{p.name or path}"
        self.meta = _pipeline_autoencoder(path)            # DiT pipelines ship their SD VAE in vae/

    def _predict(self, x_t, t, y):
        with self._autocast(x_t.device):
            o = self.dit(x_t, timestep=t.round().long().to(x_t.device), class_labels=y).sample.float()
        C = self.latent_shape[0]
        o = o[:, :C]                           # learned σ (channels C..2C) is not needed
        s = broadcast_time(self.family.s(t), x_t)
        S = broadcast_time(self.family.S(t), x_t)
        return convert_output(o, x_t, s, S, "epsilon")


# ---------------------------------------------------------------------------------- closed form
class EmpiricalBackbone(Backbone):
    """Exact posterior mean E[x | x_t] of a finite dataset {x_i} (uniform prior), any family.

    w_i ∝ exp(-‖x_t - s·x_i‖² / (2S²)); x̂0 = Σ w_i x_i. Class-conditional when labels are given:
    a label restricts the sum to that class (the null class uses all points)."""

    def __init__(self, data: torch.Tensor, family: Family, labels: torch.Tensor | None = None,
                 num_classes: int = 0):
        super().__init__()
        self.register_buffer("data", data.float())
        self.register_buffer("data_labels", labels.long() if labels is not None else torch.zeros(len(data), dtype=torch.long))
        self.family = family
        self.latent_shape = tuple(data.shape[1:])
        if labels is not None and num_classes == 0:
            num_classes = int(labels.max()) + 1
        self.num_classes = num_classes if labels is not None else 0
        self.name = "empirical"

    def _predict(self, x_t, t, y):
        X = self.data.flatten(1)                                          # (M, D)
        s = self.family.s(t).float().to(x_t.device)[:, None]              # (B,1)
        S = self.family.S(t).float().to(x_t.device)[:, None]
        xt = x_t.flatten(1)
        d2 = (xt * xt).sum(1, keepdim=True) - 2 * s * (xt @ X.T) + s ** 2 * (X * X).sum(1)[None]
        logits = -d2 / (2 * S ** 2)
        if y is not None:
            mask = (self.data_labels[None] == y[:, None]) | (y[:, None] == self.num_classes)
            logits = logits.masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits, dim=1)
        xh = (w @ X).reshape(x_t.shape)
        eh = eps_from_x0(x_t, xh, s.squeeze(1), S.squeeze(1))
        return xh, eh


class LinearGaussianBackbone(Backbone):
    """Posterior mean under x ~ N(μ, Σ) fitted to a dataset (the Wiener filter), any family:
    x̂0 = μ + U·diag(s·λ / (s²·λ + S²))·Uᵀ·(x_t - s·μ), with Σ = U·diag(λ)·Uᵀ. No training."""

    def __init__(self, mean: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, family: Family,
                 latent_shape):
        super().__init__()
        self.register_buffer("mean", mean.float().flatten())
        self.register_buffer("eigvals", eigvals.float().clamp_min(0))
        self.register_buffer("eigvecs", eigvecs.float())
        self.family = family
        self.latent_shape = tuple(latent_shape)
        self.num_classes = 0
        self.name = "linear-gaussian"

    @classmethod
    def fit(cls, data: torch.Tensor, family: Family, shrinkage: float = 1e-4) -> "LinearGaussianBackbone":
        X = data.double().flatten(1)
        mu = X.mean(0)
        Xc = X - mu
        cov = Xc.T @ Xc / max(len(X) - 1, 1)
        cov += shrinkage * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        lam, U = torch.linalg.eigh(cov)
        return cls(mu, lam, U, family, data.shape[1:])

    def _predict(self, x_t, t, y):
        s = self.family.s(t).float().to(x_t.device)[:, None]
        S = self.family.S(t).float().to(x_t.device)[:, None]
        xt = x_t.flatten(1)
        z = (xt - s * self.mean[None]) @ self.eigvecs                     # (B, D)
        gain = s * self.eigvals[None] / (s ** 2 * self.eigvals[None] + S ** 2)
        xh = self.mean[None] + (gain * z) @ self.eigvecs.T
        xh = xh.reshape(x_t.shape)
        eh = eps_from_x0(x_t, xh, s.squeeze(1), S.squeeze(1))
        return xh, eh

    def save(self, directory):
        from safetensors.torch import save_file
        tensors = {"mean": self.mean, "eigvals": self.eigvals, "eigvecs": self.eigvecs.contiguous()}
        write_backbone_files(directory, lambda path: save_file(tensors, str(path)),
                             {"format_version": FORMAT_VERSION, "type": "linear-gaussian", "family": self.family.name,
                              "family_config": self.family.to_config(), "latent_shape": list(self.latent_shape),
                              "autoencoder_spec": "pixels" if self.latent_shape[0] == 3 else None})


class GuidedBackbone(Backbone):
    """Classifier-free guidance around a conditional backbone: out = u + w·(c - u) on (x̂0, ε̂)
    (w = 1: no guidance; DiT/diffusers convention)."""

    def __init__(self, inner: Backbone, scale: float):
        super().__init__()
        if inner.num_classes == 0 or not inner.has_null_class:
            raise ValueError(f"classifier-free guidance needs a class-conditional backbone with a null class; "
                             f"{inner.name} has {'no classes' if inner.num_classes == 0 else 'no null class'}")
        self.inner = inner
        self.scale = float(scale)
        self.clip_sample = inner.clip_sample          # the guided x̂0 is clipped as the inner model's would be
        self.family = inner.family
        self.latent_shape = inner.latent_shape
        self.num_classes = inner.num_classes
        self.name = inner.name

    def weights_hash(self):
        return self.inner.weights_hash()

    def _predict(self, x_t, t, y):
        if self.scale == 1.0 or y is None:
            return self.inner._predict(x_t, t, y)
        from .guidance import guided
        return guided(self.inner._predict, (x_t, t), y, self.inner.null_class, self.scale)


# ---------------------------------------------------------------------------------- loading
def load_backbone(spec: str, device="cpu") -> Backbone:
    """``DIR`` with backbone.json (own network or linear-Gaussian), ``diffusers-unet:PATH_OR_ID``,
    ``diffusers-dit:PATH_OR_ID``. A diffusers directory is recognised by its config.json."""
    if spec.startswith("diffusers-unet:"):
        return DiffusersUNetBackbone(spec.split(":", 1)[1], device)
    if spec.startswith("diffusers-dit:"):
        return DiffusersDiTBackbone(spec.split(":", 1)[1], device)
    d = Path(spec)
    if (d / "backbone.json").exists():
        try:
            meta = json.loads((d / "backbone.json").read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{d / 'backbone.json'} is not valid JSON ({e}); re-export the backbone") from None
        if meta.get("type") == "linear-gaussian":
            from safetensors import SafetensorError
            from safetensors.torch import load_file
            wf = d / "backbone.safetensors"
            try:
                w = load_file(str(wf))
            except (SafetensorError, OSError) as e:
                raise ValueError(f"{wf} is corrupt or truncated ({e}); re-fit the backbone") from None
            bb = LinearGaussianBackbone(w["mean"], w["eigvals"], w["eigvecs"], family_from_meta(meta),
                                        meta["latent_shape"]).to(device)
            bb.meta = meta
            return bb
        return load_network_backbone(d, device)
    if (d / "config.json").exists() or (d / "unet" / "config.json").exists():
        cls = json.loads(((d / "unet" / "config.json") if (d / "unet").is_dir() else (d / "config.json")).read_text())
        if cls.get("_class_name") == "DiTTransformer2DModel":
            return DiffusersDiTBackbone(spec, device)
        return DiffusersUNetBackbone(spec, device)
    if (d / "transformer" / "config.json").exists():
        return DiffusersDiTBackbone(spec, device)
    raise FileNotFoundError(f"no backbone found at {spec!r}: expected a directory with backbone.json "
                            "(rdpm-train-backbone output), a diffusers UNet2DModel/DiT directory, or "
                            "diffusers-unet:ID / diffusers-dit:ID")
