"""Backbone adapters (SPEC §1): closed-form backbones against brute force, the project's own
network's output conversion and persistence, diffusers adapters with tiny random components,
classifier-free guidance, and bad input. Everything is tiny and offline (no model hub)."""
from __future__ import annotations

import json
import math
import types

import pytest
import torch

from rdpm_gddcm.backbones import (DiffusersDiTBackbone, DiffusersUNetBackbone, EmpiricalBackbone,
                                  GuidedBackbone, LinearGaussianBackbone, NetworkBackbone, load_backbone,
                                  load_network_backbone)
from rdpm_gddcm.families import Family, ddpm_alphas_cumprod
from rdpm_gddcm.networks import UNet, UNetConfig

FAMS = ["vp-discrete", "vp-continuous", "ve", "flow"]
# times where the posterior over a handful of points is neither one-hot nor uniform
TIMES = {"vp-discrete": [60, 250, 700], "vp-continuous": [0.15, 0.4, 0.9],
         "ve": [0.3, 1.0, 4.0], "flow": [0.2, 0.5, 0.85]}

TINY_UNET = dict(in_channels=3, image_size=8, base_channels=16, channel_mult=(1,), num_res_blocks=1,
                 attn_resolutions=(), num_classes=3)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DIFFUSERS_OFFLINE", "1")


def _sS(fam: Family, t):
    """s(t), S(t) as float64 (B,1,1,1) tensors for per-sample times t."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return fam.s(t).reshape(-1, 1, 1, 1), fam.S(t).reshape(-1, 1, 1, 1)


def _assert_marginal_consistent(fam, x_t, t, xh, eh, tol=1e-4):
    """x_t == s·xh + S·eh (the predictions are consistent with the family's marginal)."""
    s, S = _sS(fam, t)
    rec = s * xh.double() + S * eh.double()
    scale = 1.0 + x_t.double().abs().max()
    assert (rec - x_t.double()).abs().max() <= tol * scale


# ------------------------------------------------------------------------------ 1. empirical
def _brute_posterior_mean(data, data_labels, x_t, t, y, fam, null):
    """E[x | x_t] by explicit float64 loops: weights ∝ N(x_t; s·x_i, S²I) over the allowed points."""
    X = data.double().flatten(1)
    out = torch.empty(x_t.shape[0], X.shape[1], dtype=torch.float64)
    for b in range(x_t.shape[0]):
        s, S = float(fam.s(float(t[b]))), float(fam.S(float(t[b])))
        xt = x_t[b].double().flatten()
        logw = []
        for i in range(X.shape[0]):
            if y is not None and int(y[b]) != null and int(data_labels[i]) != int(y[b]):
                continue
            d2 = sum(float(xt[j] - s * X[i, j]) ** 2 for j in range(X.shape[1]))
            logw.append((i, -d2 / (2 * S * S)))
        m = max(lw for _, lw in logw)
        z = sum(math.exp(lw - m) for _, lw in logw)
        acc = torch.zeros(X.shape[1], dtype=torch.float64)
        for i, lw in logw:
            acc += math.exp(lw - m) / z * X[i]
        out[b] = acc
    return out.reshape(x_t.shape)


@pytest.mark.parametrize("name", FAMS)
def test_empirical_backbone_equals_brute_force_posterior_mean(name):
    fam = Family(name)
    g = torch.Generator().manual_seed(1)
    data = 0.6 * torch.randn(5, 2, 2, 2, generator=g)
    bb = EmpiricalBackbone(data, fam)
    assert bb.latent_shape == (2, 2, 2) and bb.num_classes == 0
    for t in TIMES[name]:
        s, S = _sS(fam, [t])
        # noisy versions of data points and of a blend of two: the posterior is spread out
        x = torch.stack([data[0], data[3], 0.5 * (data[1] + data[2])])
        x_t = (s * x.double() + S * torch.randn(x.shape, generator=g, dtype=torch.float64)).float()
        tt = torch.full((3,), float(t))
        xh, eh = bb.predict(x_t, t)
        ref = _brute_posterior_mean(data, None, x_t, tt, None, fam, null=0)
        assert xh.dtype == torch.float32 and xh.shape == x_t.shape
        assert torch.allclose(xh.double(), ref, atol=2e-5, rtol=1e-4), (t, (xh.double() - ref).abs().max())
        assert torch.allclose(eh.double(), (x_t.double() - s * xh.double()) / S, atol=1e-4, rtol=1e-4)
    # per-sample times give the same answer as one call per time
    ts = torch.tensor(TIMES[name], dtype=torch.float64)
    x_t = torch.randn(3, 2, 2, 2, generator=g)
    xh, _ = bb.predict(x_t, ts)
    assert torch.allclose(xh.double(), _brute_posterior_mean(data, None, x_t, ts, None, fam, 0), atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["vp-discrete", "flow"])
def test_empirical_backbone_class_conditional(name):
    fam = Family(name)
    g = torch.Generator().manual_seed(2)
    data = 0.6 * torch.randn(5, 2, 2, 2, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2])
    bb = EmpiricalBackbone(data, fam, labels=labels, num_classes=3)
    assert bb.num_classes == 3 and bb.null_class == 3
    t = TIMES[name][1]
    x_t = torch.randn(1, 2, 2, 2, generator=g).expand(4, -1, -1, -1).contiguous()
    y = torch.tensor([0, 1, 2, 3])
    xh, eh = bb.predict(x_t, t, y)
    ref = _brute_posterior_mean(data, labels, x_t, torch.full((4,), float(t)), y, fam, null=3)
    assert torch.allclose(xh.double(), ref, atol=2e-5, rtol=1e-4)
    assert torch.allclose(xh[2], data[4], atol=1e-6)                 # a single point in class 2
    # the null class (and no label at all) uses every point: equals the unconditional backbone
    xu, _ = EmpiricalBackbone(data, fam).predict(x_t[:1], t)
    assert torch.allclose(xh[3:], xu, atol=1e-6)
    xn, _ = bb.predict(x_t[:1], t)
    assert torch.allclose(xn, xu, atol=1e-6)
    # class restriction matters here (otherwise the test proves nothing)
    assert (xh[0] - xh[1]).abs().max() > 1e-3
    _assert_marginal_consistent(fam, x_t, torch.full((4,), float(t)), xh, eh)


# ------------------------------------------------------------------------------ 2. linear Gaussian
@pytest.mark.parametrize("name", ["vp-discrete", "ve", "flow"])
def test_linear_gaussian_equals_closed_form_posterior_mean(name):
    fam = Family(name)
    g = torch.Generator().manual_seed(3)
    D = 8
    A = torch.randn(D, D, generator=g, dtype=torch.float64) / math.sqrt(D)
    mu = torch.randn(D, generator=g, dtype=torch.float64)
    data = (mu + torch.randn(60, D, generator=g, dtype=torch.float64) @ A.T).reshape(60, 2, 2, 2)
    bb = LinearGaussianBackbone.fit(data.float(), fam, shrinkage=0.0)
    X = data.flatten(1)
    m = X.mean(0)
    cov = torch.cov(X.T)                                              # unbiased, like the fit
    assert torch.linalg.matrix_rank(cov) == D
    x_t = torch.randn(4, 2, 2, 2, generator=g, dtype=torch.float64)
    for t in TIMES[name]:
        s, S = float(fam.s(t)), float(fam.S(t))
        r = x_t.flatten(1) - s * m                                    # (B, D)
        sol = torch.linalg.solve(s * s * cov + S * S * torch.eye(D, dtype=torch.float64), r.T)
        ref = (m[:, None] + s * cov @ sol).T.reshape(x_t.shape)
        xh, eh = bb.predict(x_t.float(), t)
        assert torch.allclose(xh.double(), ref, atol=2e-4, rtol=1e-4), (t, (xh.double() - ref).abs().max())
        assert torch.allclose(eh.double(), (x_t - s * xh.double()) / S, atol=2e-4, rtol=1e-4)


# ------------------------------------------------------------------------------ 3. own network
def _tiny_net(seed=0, **over) -> UNet:
    """A tiny UNet whose (zero-initialised) output layers are randomised so outputs are non-trivial."""
    torch.manual_seed(seed)
    net = UNet(UNetConfig(**{**TINY_UNET, **over}))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


NET_FAMILIES = {"vp": ("vp-discrete", [5, 400, 990]), "vp-continuous": ("vp-continuous", [0.02, 0.5, 0.97]),
                "ve": ("ve", [0.05, 1.0, 30.0]), "flow": ("flow", [0.1, 0.5, 0.9])}


@pytest.mark.parametrize("key", list(NET_FAMILIES))
def test_network_backbone_output_conversion(key):
    fam_name, times = NET_FAMILIES[key]
    fam = Family(fam_name)
    net = _tiny_net(0)
    bb = NetworkBackbone(net, fam).eval()
    assert bb.latent_shape == (3, 8, 8) and bb.num_classes == 3
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 3, 8, 8, generator=g).clamp(-1, 1)
    t = torch.tensor(times, dtype=torch.float64)
    s, S = _sS(fam, t)
    x_t = (s * x.double() + S * torch.randn(x.shape, generator=g, dtype=torch.float64)).float()
    y = torch.tensor([0, 2, 3])
    xh, eh = bb.predict(x_t, t, y)
    assert xh.shape == eh.shape == x_t.shape and xh.dtype == eh.dtype == torch.float32
    _assert_marginal_consistent(fam, x_t, t, xh, eh)
    with torch.no_grad():
        raw = bb.raw(x_t, t, y)
        assert raw.abs().mean() > 1e-3                                 # not a trivially zero network
        target = {"vp": eh, "vp-continuous": eh, "ve": xh, "flow": eh - xh}[key]
        assert torch.allclose(raw, target, atol=1e-4, rtol=1e-4)
        # the preconditioning, written out independently (DDPM; score SDE 999·t; EDM Table 1; flow 1000·t)
        t32 = t.float()
        if key == "vp":
            ref = net(x_t, t32, y)
        elif key == "vp-continuous":
            ref = net(x_t, 999.0 * t32, y)
        elif key == "flow":
            ref = net(x_t, 1000.0 * t32, y)
        else:
            sd, sig = 0.5, t.reshape(-1, 1, 1, 1)
            c_in = 1 / torch.sqrt(sig ** 2 + sd ** 2)
            c_skip = sd ** 2 / (sig ** 2 + sd ** 2)
            c_out = sig * sd / torch.sqrt(sig ** 2 + sd ** 2)
            F_ = net((c_in * x_t.double()).float(), 1000.0 * 0.25 * torch.log(t).float(), y)
            ref = (c_skip * x_t.double() + c_out * F_.double()).float()
        assert torch.allclose(raw, ref, atol=1e-5, rtol=1e-5)
    # a scalar time equals the same per-sample time
    xh0, eh0 = bb.predict(x_t[:1], float(t[0]), y[:1])
    assert torch.allclose(xh0, xh[:1], atol=1e-5) and torch.allclose(eh0, eh[:1], atol=1e-5)
    # ve at small σ: D ≈ x_t (c_skip → 1, c_out → 0)
    if key == "ve":
        xs = torch.randn(2, 3, 8, 8, generator=g)
        xh_s, _ = bb.predict(xs, 1e-3)
        assert torch.allclose(xh_s, xs, atol=5e-3)


@pytest.mark.parametrize("key", ["vp", "ve", "flow"])
def test_network_backbone_save_load_roundtrip(tmp_path, key):
    from safetensors import safe_open
    fam_name, times = NET_FAMILIES[key]
    fam = Family(fam_name)
    net = _tiny_net(1)
    bb = NetworkBackbone(net, fam, name="tiny-test").eval()
    bb.save(tmp_path / "bb", extra={"steps": 7})
    meta = json.loads((tmp_path / "bb" / "backbone.json").read_text())
    assert meta["family"] == fam_name and meta["prediction"] == bb.prediction and meta["steps"] == 7
    assert meta["network"] == net.cfg.to_json() and meta["type"] == "rdpm-unet"
    assert not list((tmp_path / "bb").glob("*.tmp"))
    with safe_open(str(tmp_path / "bb" / "backbone.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert set(keys) == set(net.state_dict()) and all(f.get_tensor(k).dtype == torch.float16 for k in keys)

    l1 = load_network_backbone(tmp_path / "bb")
    l2 = load_backbone(str(tmp_path / "bb"))
    assert isinstance(l2, NetworkBackbone) and not l1.net.training
    assert l1.weights_hash() == l2.weights_hash() and len(l1.weights_hash()) == 16
    ident = l1.identity()
    assert ident["name"] == "tiny-test" and ident["sha256"] == l1.weights_hash()
    assert ident["family"] == fam.to_json() and ident["latent_shape"] == [3, 8, 8] and ident["num_classes"] == 3

    # outputs: equal to a copy of the original with fp16-rounded weights, close to the fp32 original
    half = UNet(net.cfg)
    half.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    bb_half = NetworkBackbone(half.eval(), fam)
    g = torch.Generator().manual_seed(5)
    t = torch.tensor(times, dtype=torch.float64)
    x_t = torch.randn(3, 3, 8, 8, generator=g) * (1 + _sS(fam, t)[1].float())
    y = torch.tensor([0, 1, 3])
    xa, ea = l1.predict(x_t, t, y)
    xb, eb = l2.predict(x_t, t, y)
    xc, ec = bb_half.predict(x_t, t, y)
    xo, eo = bb.predict(x_t, t, y)
    assert torch.equal(xa, xb) and torch.equal(ea, eb)
    assert torch.allclose(xa, xc, atol=1e-5, rtol=1e-5) and torch.allclose(ea, ec, atol=1e-5, rtol=1e-5)
    assert torch.allclose(xa, xo, atol=2e-2, rtol=2e-2) and torch.allclose(ea, eo, atol=2e-2, rtol=2e-2)
    # a different network has a different hash
    other = NetworkBackbone(_tiny_net(2), fam)
    other.save(tmp_path / "other")
    assert load_network_backbone(tmp_path / "other").weights_hash() != l1.weights_hash()


NON_DEFAULT_FAMILIES = {
    "vp-discrete-T100-cosine": lambda: Family("vp-discrete", alphas_cumprod=ddpm_alphas_cumprod(100, schedule="squaredcos_cap_v2")),
    "ve-sigma_max-40": lambda: Family("ve", sigma_min=0.01, sigma_max=40.0),
    "vp-continuous-beta_max-10": lambda: Family("vp-continuous", beta_max=10.0),
}


@pytest.mark.parametrize("key", list(NON_DEFAULT_FAMILIES))
def test_network_backbone_roundtrip_keeps_non_default_family(tmp_path, key):
    fam = NON_DEFAULT_FAMILIES[key]()
    bb = NetworkBackbone(_tiny_net(0), fam)
    bb.save(tmp_path)
    assert load_network_backbone(tmp_path).family.to_json() == fam.to_json()


# ------------------------------------------------------------------------------ 4. diffusers
def _tiny_diffusers_unet(num_class_embeds=None):
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=num_class_embeds)


def _save_unet_dir(path, layout="flat", num_class_embeds=None, **sched_kw):
    """google/ddpm-cifar10-32 layout (``flat``: config.json + weights + scheduler_config.json at the
    top) or the pipeline layout (``unet/`` + ``scheduler/``). Returns the scheduler."""
    from diffusers import DDPMScheduler
    unet = _tiny_diffusers_unet(num_class_embeds)
    sched = DDPMScheduler(**sched_kw)
    if layout == "flat":
        unet.save_pretrained(str(path))
        sched.save_pretrained(str(path))
    else:
        unet.save_pretrained(str(path / "unet"))
        sched.save_pretrained(str(path / "scheduler"))
    return sched


SCHEDULES = {"default": {}, "scaled_linear-T200": dict(num_train_timesteps=200, beta_start=2e-4, beta_end=0.03,
                                                        beta_schedule="scaled_linear"),
             "cosine-T300": dict(num_train_timesteps=300, beta_schedule="squaredcos_cap_v2")}


@pytest.mark.parametrize("layout", ["flat", "pipeline"])
@pytest.mark.parametrize("sched_name", list(SCHEDULES))
def test_diffusers_unet_adapter(tmp_path, layout, sched_name):
    sched = _save_unet_dir(tmp_path, layout, **SCHEDULES[sched_name])
    for bb in (load_backbone(str(tmp_path)), DiffusersUNetBackbone(str(tmp_path)),
               load_backbone("diffusers-unet:" + str(tmp_path))):
        assert isinstance(bb, DiffusersUNetBackbone)
        assert bb.family.name == "vp-discrete" and bb.prediction == "epsilon"
        assert bb.family.num_train_timesteps == sched.config.num_train_timesteps
        assert torch.allclose(bb.family.alphas_cumprod.float(), sched.alphas_cumprod, atol=1e-6, rtol=1e-5)
        assert bb.latent_shape == (3, 8, 8) and bb.num_classes == 0
    T = sched.config.num_train_timesteps
    g = torch.Generator().manual_seed(6)
    x_t = torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([0.0, T // 2, T - 1], dtype=torch.float64)
    xh, eh = bb.predict(x_t, t)
    assert xh.shape == x_t.shape and torch.isfinite(xh).all() and torch.isfinite(eh).all()
    assert eh.abs().mean() > 1e-4
    _assert_marginal_consistent(bb.family, x_t, t, xh, eh, tol=1e-3)
    ident = bb.identity()
    assert ident["family"]["num_train_timesteps"] == T and len(ident["sha256"]) == 16


def test_diffusers_unet_trained_betas(tmp_path):
    betas = torch.linspace(1e-3, 0.05, 50, dtype=torch.float64)
    sched = _save_unet_dir(tmp_path, "flat", num_train_timesteps=50, trained_betas=betas.tolist())
    bb = load_backbone(str(tmp_path))
    assert torch.allclose(bb.family.alphas_cumprod.float(), sched.alphas_cumprod, atol=1e-6)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_diffusers_unet_conversion_with_oracle(tmp_path, monkeypatch, prediction_type):
    """Replace the UNet's forward by an oracle that returns the exact target of a known (x, ε):
    the adapter must return xh ≈ x and eh ≈ ε, and pass the integer step to the UNet."""
    sched = _save_unet_dir(tmp_path, "flat", prediction_type=prediction_type, clip_sample=False)
    bb = load_backbone(str(tmp_path))
    assert bb.clip_sample is None
    assert bb.prediction == {"epsilon": "epsilon", "v_prediction": "v", "sample": "sample"}[prediction_type]
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 3, 8, 8, generator=g)
    eps = torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([10.0, 500.0, 980.0], dtype=torch.float64)
    abar = sched.alphas_cumprod.double()[t.long()].reshape(-1, 1, 1, 1)
    s, S = abar.sqrt(), (1 - abar).sqrt()
    x_t = (s * x + S * eps).float()
    seen = {}

    def oracle(sample, timestep, class_labels=None, **kw):
        seen["t"] = timestep
        o = {"epsilon": eps, "v_prediction": s * eps - S * x, "sample": x}[prediction_type]
        return types.SimpleNamespace(sample=o.float())

    monkeypatch.setattr(bb.unet, "forward", oracle)
    xh, eh = bb.predict(x_t, t)
    assert torch.equal(seen["t"], torch.tensor([10, 500, 980])) and seen["t"].dtype == torch.long
    assert torch.allclose(xh, x, atol=2e-3, rtol=1e-3), (xh - x).abs().max()
    assert torch.allclose(eh, eps, atol=2e-3, rtol=1e-3), (eh - eps).abs().max()


def _save_dit_dir(path, layout="flat"):
    from diffusers import DDPMScheduler, DiTTransformer2DModel
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(sample_size=4, in_channels=4, out_channels=8, num_layers=1, num_attention_heads=2,
                                attention_head_dim=8, patch_size=2, num_embeds_ada_norm=10, norm_type="ada_norm_zero")
    with torch.no_grad():                      # make sure the class embedding actually matters
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    sched = DDPMScheduler()
    if layout == "flat":
        dit.save_pretrained(str(path))
        sched.save_pretrained(str(path))
    else:
        dit.save_pretrained(str(path / "transformer"))
        sched.save_pretrained(str(path / "scheduler"))
    return sched


@pytest.mark.parametrize("layout", ["flat", "pipeline"])
def test_diffusers_dit_adapter(tmp_path, monkeypatch, layout):
    sched = _save_dit_dir(tmp_path, layout)
    bb = load_backbone(str(tmp_path))
    assert isinstance(bb, DiffusersDiTBackbone)
    assert isinstance(load_backbone("diffusers-dit:" + str(tmp_path)), DiffusersDiTBackbone)
    assert bb.num_classes == 10 and bb.null_class == 10 and bb.latent_shape == (4, 4, 4)
    assert torch.allclose(bb.family.alphas_cumprod.float(), sched.alphas_cumprod, atol=1e-6)
    g = torch.Generator().manual_seed(8)
    x_t = torch.randn(1, 4, 4, 4, generator=g).expand(3, -1, -1, -1).contiguous()
    t = 400
    xh, eh = bb.predict(x_t, t, torch.tensor([0, 7, 10]))   # 10 = the null class
    assert xh.shape == eh.shape == (3, 4, 4, 4)                 # learned-σ half dropped
    assert torch.isfinite(xh).all() and torch.isfinite(eh).all()
    _assert_marginal_consistent(bb.family, x_t, torch.full((3,), float(t)), xh, eh, tol=1e-3)
    assert (eh[0] - eh[1]).abs().max() > 1e-5 and (eh[0] - eh[2]).abs().max() > 1e-5   # labels matter
    xn, en = bb.predict(x_t[:1], t)                              # no label = the null class
    assert torch.allclose(en, eh[2:], atol=1e-5)
    with pytest.raises(ValueError, match="class labels"):
        bb.predict(x_t[:1], t, torch.tensor([11]))

    # oracle: the first C output channels are ε, the learned-σ half must be ignored
    x = torch.randn(2, 4, 4, 4, generator=g)
    eps = torch.randn(2, 4, 4, 4, generator=g)
    abar = sched.alphas_cumprod.double()[t]
    xt2 = (abar.sqrt() * x + (1 - abar).sqrt() * eps).float()
    seen = {}

    def oracle(hidden_states, timestep=None, class_labels=None, **kw):
        seen.update(t=timestep, y=class_labels)
        return types.SimpleNamespace(sample=torch.cat([eps, torch.full_like(eps, 1e3)], 1))

    monkeypatch.setattr(bb.dit, "forward", oracle)
    xh2, eh2 = bb.predict(xt2, t)
    assert torch.equal(seen["y"], torch.tensor([10, 10])) and torch.equal(seen["t"], torch.tensor([t, t]))
    assert torch.allclose(eh2, eps, atol=1e-5) and torch.allclose(xh2, x, atol=1e-3)


def test_dit_pipeline_dir_brings_its_vae_and_a_bare_latent_model_asks_for_one(tmp_path):
    """A DiT pipeline directory (transformer/, scheduler/, vae/) decodes with its own VAE by default;
    a latent model without one refuses to fall back to `pixels` and names --autoencoder."""
    from diffusers import AutoencoderKL

    from rdpm_gddcm.autoencoders import DiffusersAutoencoder
    from rdpm_gddcm.tokenizer import load_models
    _save_dit_dir(tmp_path / "pipe", "pipeline")
    AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                  layers_per_block=1).save_pretrained(str(tmp_path / "pipe" / "vae"))
    bb, ae, size = load_models(f"diffusers-dit:{tmp_path / 'pipe'}", None, None)
    assert isinstance(ae, DiffusersAutoencoder) and size == 8          # 4x4 latent, VAE downsamples 2x
    _save_dit_dir(tmp_path / "bare", "pipeline")
    with pytest.raises(ValueError, match="--autoencoder"):
        load_models(f"diffusers-dit:{tmp_path / 'bare'}", None, None)


def test_hub_ids_try_the_pipeline_subfolder_then_the_root(monkeypatch):
    """No network here: the hub loader is replaced by a fake repo to check the lookup order."""
    from diffusers import DiTTransformer2DModel

    from rdpm_gddcm import backbones
    calls = []

    def fake(layout):
        def from_pretrained(path, subfolder=None):
            calls.append(subfolder)
            if subfolder != layout:
                raise OSError(f"{path} has no config.json in {subfolder or 'the root'}")
            return "model"
        return from_pretrained

    for layout, expect in (("transformer", ["transformer"]), (None, ["transformer", None])):
        calls.clear()
        monkeypatch.setattr(DiTTransformer2DModel, "from_pretrained", fake(layout))
        assert backbones._from_pretrained(DiTTransformer2DModel, "facebook/DiT-XL-2-256", "transformer") == "model"
        assert calls == expect
    monkeypatch.setattr(DiTTransformer2DModel, "from_pretrained", fake("elsewhere"))
    with pytest.raises(FileNotFoundError, match="facebook/DiT-XL-2-256"):
        backbones._from_pretrained(DiTTransformer2DModel, "facebook/DiT-XL-2-256", "transformer")
    assert backbones._pipeline_autoencoder("facebook/DiT-XL-2-256") == {"autoencoder_spec": "hf:facebook/DiT-XL-2-256"}


def test_guided_class_conditional_diffusers_unet_refuses_clearly(tmp_path):
    _save_unet_dir(tmp_path, "flat", num_class_embeds=3)
    bb = load_backbone(str(tmp_path))
    assert bb.num_classes == 3
    with pytest.raises(ValueError):
        GuidedBackbone(bb, 2.0).predict(torch.randn(2, 3, 8, 8), 100, torch.tensor([0, 1]))


# ------------------------------------------------------------------------------ 5. guidance
@pytest.mark.parametrize("inner_kind", ["network", "empirical"])
def test_guided_backbone(inner_kind):
    g = torch.Generator().manual_seed(9)
    if inner_kind == "network":
        fam = Family("flow")
        inner = NetworkBackbone(_tiny_net(3), fam).eval()
        shape, t = (3, 8, 8), torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    else:
        fam = Family("ve")
        data = torch.randn(6, 2, 2, 2, generator=g)
        inner = EmpiricalBackbone(data, fam, labels=torch.tensor([0, 0, 1, 1, 2, 2]), num_classes=3)
        shape, t = (2, 2, 2), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    x_t = torch.randn(3, *shape, generator=g)
    y = torch.tensor([0, 1, 2])
    xc, ec = inner.predict(x_t, t, y)
    xu, eu = inner.predict(x_t, t, torch.full((3,), inner.null_class))
    assert (xc - xu).abs().max() > 1e-4                           # the label matters

    x1, e1 = GuidedBackbone(inner, 1.0).predict(x_t, t, y)
    assert torch.allclose(x1, xc, atol=1e-6) and torch.allclose(e1, ec, atol=1e-6)
    w = 3.5
    gb = GuidedBackbone(inner, w)
    xw, ew = gb.predict(x_t, t, y)
    assert torch.allclose(xw, xu + w * (xc - xu), atol=1e-5, rtol=1e-5)
    assert torch.allclose(ew, eu + w * (ec - eu), atol=1e-5, rtol=1e-5)
    _assert_marginal_consistent(fam, x_t, t, xw, ew, tol=1e-4)
    x0, _ = GuidedBackbone(inner, 0.0).predict(x_t, t, y)        # w = 0: unconditional
    assert torch.allclose(x0, xu, atol=1e-5)
    xn, _ = gb.predict(x_t, t)                                    # no label: unconditional
    assert torch.allclose(xn, xu, atol=1e-6)
    assert gb.weights_hash() == inner.weights_hash() and gb.num_classes == inner.num_classes


# ------------------------------------------------------------------------------ 6. bad input
def test_load_backbone_empty_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="backbone.json"):
        load_backbone(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="backbone.json"):
        load_backbone(str(tmp_path / "does-not-exist"))
    with pytest.raises(FileNotFoundError, match="backbone.safetensors"):
        load_network_backbone(tmp_path)


def test_load_backbone_truncated_weights(tmp_path):
    NetworkBackbone(_tiny_net(0), Family("flow")).save(tmp_path)
    wf = tmp_path / "backbone.safetensors"
    full = wf.read_bytes()
    for cut in (4, len(full) // 2, len(full) - 8):
        wf.write_bytes(full[:cut])
        with pytest.raises(ValueError, match="corrupt or truncated") as ei:
            load_backbone(str(tmp_path))
        assert "backbone.safetensors" in str(ei.value)
    wf.write_bytes(full)
    load_backbone(str(tmp_path))                                  # intact again: loads


def test_load_linear_gaussian_truncated_weights(tmp_path):
    LinearGaussianBackbone.fit(torch.randn(20, 2, 2, 2), Family("ve")).save(tmp_path)
    assert isinstance(load_backbone(str(tmp_path)), LinearGaussianBackbone)
    wf = tmp_path / "backbone.safetensors"
    wf.write_bytes(wf.read_bytes()[:40])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_backbone(str(tmp_path))


def test_load_backbone_corrupt_json_names_the_file(tmp_path):
    NetworkBackbone(_tiny_net(0), Family("flow")).save(tmp_path)
    (tmp_path / "backbone.json").write_text("{not json")
    with pytest.raises(ValueError, match="backbone.json"):
        load_backbone(str(tmp_path))


def test_labels_out_of_range():
    bb = NetworkBackbone(_tiny_net(0), Family("flow")).eval()
    x = torch.randn(2, 3, 8, 8)
    for bad in ([0, 4], [-1, 0], 5):
        with pytest.raises(ValueError, match="class labels"):
            bb.predict(x, 0.5, torch.as_tensor(bad))
    bb.predict(x, 0.5, torch.tensor([0, 3]))                     # 3 = null class is allowed
    emp = EmpiricalBackbone(torch.randn(4, 2, 2, 2), Family("ve"), labels=torch.tensor([0, 1, 0, 1]), num_classes=2)
    with pytest.raises(ValueError, match="class labels"):
        emp.predict(torch.randn(1, 2, 2, 2), 1.0, torch.tensor([3]))
    with pytest.raises(ValueError, match="class labels"):
        GuidedBackbone(bb, 2.0).predict(x, 0.5, torch.tensor([0, 9]))


def test_clip_sample_clamps_xh_and_keeps_marginal(tmp_path):
    """diffusers' clip_sample (default True for DDPM) clamps x̂0 to [-r, r]; ε̂ is recomputed so
    that x_t = s·x̂0 + S·ε̂ still holds."""
    _save_unet_dir(tmp_path, "flat", clip_sample=True, clip_sample_range=0.5)
    bb = load_backbone(str(tmp_path))
    assert bb.clip_sample == 0.5
    x_t = 3 * torch.randn(4, 3, 8, 8)
    for t in (3.0, 700.0):
        xh, eh = bb.predict(x_t, t)
        assert xh.abs().max() <= 0.5 + 1e-6
        s, S = float(bb.family.s(t)), float(bb.family.S(t))
        assert torch.allclose(s * xh + S * eh, x_t, atol=1e-4)
