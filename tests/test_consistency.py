"""The consistency family (SPEC §1: the VE marginal, the network is the consistency function with
the boundary parametrisation): f(x, σ_min) = x exactly, conversions, bit-exact decoding through
every plan, the multistep consistency sampler, consistency training, and diffusers' format."""
from __future__ import annotations

import json

import pytest
import torch

from rdpm_gddcm.autoencoders import PixelAutoencoder
from rdpm_gddcm.backbones import DiffusersUNetBackbone, NetworkBackbone, load_backbone
from rdpm_gddcm.chain import consistency_sample, own_sample
from rdpm_gddcm.families import Family
from rdpm_gddcm.networks import build_unet
from rdpm_gddcm.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.numerics


def _bb(seed=0, size=8):
    torch.manual_seed(seed)
    net = build_unet("unet-tiny", in_channels=3, image_size=size, num_classes=10).eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return NetworkBackbone(net, Family("consistency"), sigma_data=0.5)


def test_boundary_condition_is_exact():
    """f(x, σ_min) = x bit for bit (c_skip = 1, c_out = 0 there), for any network and label; away
    from σ_min the network matters."""
    bb, fam = _bb(), Family("consistency")
    x = torch.randn(4, 3, 8, 8)
    y = torch.tensor([0, 3, 9, 10])
    t = torch.full((4,), fam.sigma_min, dtype=torch.float64)
    assert torch.equal(bb.raw(x, t, y), x)
    assert not torch.allclose(bb.raw(x, t * 10, y), x, atol=1e-3)
    c_skip, c_out, _ = fam.preconditioning(torch.tensor([fam.sigma_min, 1.0]), 0.5)
    assert c_skip[0] == 1.0 and c_out[0] == 0.0 and 0 < c_skip[1] < 1 and c_out[1] > 0


def test_consistency_family_is_ve_marginal_with_sample_prediction():
    f, ve = Family("consistency", sigma_max=40.0), Family("ve", sigma_max=40.0)
    for t in (0.002, 0.5, 40.0):
        assert float(f.s(t)) == float(ve.s(t)) and float(f.S(t)) == float(ve.S(t))
    assert f.prediction == "sample" and f.plan_defaults() == ve.plan_defaults()
    assert Family.from_config(f.to_config()) == f and f.to_json()["name"] == "consistency"


def test_oracle_network_gives_exact_x0_and_eps():
    """A network whose preconditioned output is exactly x: x̂0 = x and ε̂ = ε (generic conversion)."""
    fam = Family("consistency")
    g = torch.Generator().manual_seed(1)
    x, eps = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    t = torch.tensor([0.3, 7.0], dtype=torch.float64)
    sig = t.float().reshape(-1, 1, 1, 1)
    x_t = x + sig * eps

    class Oracle(torch.nn.Module):                       # F such that c_skip·x_t + c_out·F = x
        def forward(self, xin, c_noise, y):
            c_skip, c_out, c_in = fam.preconditioning(sig, 0.5)
            return (x - c_skip * (xin / c_in)) / c_out
    bb = NetworkBackbone(build_unet("unet-tiny", in_channels=3, image_size=8, num_classes=10), fam)
    bb.net = Oracle()
    xh, eh = bb.predict(x_t, t)
    assert torch.allclose(xh, x, atol=1e-5) and torch.allclose(eh, eps, atol=1e-4)


@pytest.mark.parametrize("plan,p", [("fixed-point", 0.0), ("trajectory", 0.5), ("trajectory", 0.2)])
def test_decode_through_a_consistency_backbone_is_bit_exact(plan, p):
    bb = _bb()
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    tok = Tokenizer(bb, PixelAutoencoder(), TokenizerConfig(plan=plan, p=p, num_steps=5, codebook_size=32, grid="2x2"), 8)
    tokens, rec, _ = tok.encode(x)
    assert torch.equal(tok.decode(tokens), rec)
    again = Tokenizer.from_header(tok.header().to_json(), bb, PixelAutoencoder())
    assert torch.equal(again.decode(tokens), rec)


def test_multistep_sampler():
    """One step is f(σ_max·z); more steps re-noise to σ_i from each image's own generator, so an image
    does not depend on its batch; the step levels descend from σ_max."""
    bb, fam = _bb(), Family("consistency")
    z = torch.randn(3, 3, 8, 8)
    y = torch.tensor([1, 2, 3])
    one = consistency_sample(bb, z, fam.sampler_times(1), y)
    assert torch.equal(one, bb.predict(fam.sigma_max * z, torch.full((3,), fam.sigma_max, dtype=torch.float64), y)[0])
    gens = lambda: [torch.Generator().manual_seed(10 + i) for i in range(3)]  # noqa: E731
    two = own_sample(bb, z, 2, y, gens())
    alone = own_sample(bb, z[1:2], 2, y[1:2], gens()[1:2])
    assert torch.allclose(two[1:2], alone, atol=1e-6) and not torch.equal(two, one)
    ts = fam.sampler_times(4)
    assert ts[0] == fam.sigma_max and all(a > b > fam.sigma_min for a, b in zip(ts, ts[1:]))


def test_consistency_training_loss_and_init_from_edm(tmp_path):
    """ECT's loss is finite and differentiable; at the start (progress 0) r = σ_min, so the target is
    the clean image (the diffusion model's denoising task); a consistency run may start from an EDM
    backbone, not from a flow one."""
    from rdpm_gddcm.train_backbone import main, training_loss, BackboneTrainConfig
    bb = _bb()
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    cfg = BackboneTrainConfig(max_steps=100)
    loss = training_loss(bb, x, torch.arange(4), torch.Generator().manual_seed(0), cfg, 0)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in bb.net.parameters())
    # the Δt schedule: with --ect-halvings 0 the end of the run still trains the start's task; with ECT's
    # 8 halvings the loss at the end is another one (r close to t)
    with torch.no_grad():
        def at(step, halvings):
            c = BackboneTrainConfig(max_steps=100, ect_halvings=halvings)
            return training_loss(bb, x, torch.arange(4), torch.Generator().manual_seed(0), c, step)
        start = at(0, 8.0)
        assert torch.allclose(at(100, 0.0), start) and not torch.allclose(at(100, 8.0), start, rtol=1e-2)
    base = ["--data-path", "procedural:16", "--image-size", "8", "--model", "unet-tiny", "--max-steps", "2",
            "--global-batch-size", "8", "--sample-every", "0", "--sample-steps", "2", "--mixed-precision", "no"]
    main(base + ["--family", "edm", "--results-dir", str(tmp_path / "edm")])
    main(base + ["--family", "consistency", "--init-from", str(tmp_path / "edm"), "--results-dir", str(tmp_path / "cm")])
    cm = load_backbone(str(tmp_path / "cm"))
    assert cm.family.name == "consistency" and (tmp_path / "cm" / "samples" / "step_0000002.png").exists()
    main(base + ["--family", "flow", "--results-dir", str(tmp_path / "flow")])
    with pytest.raises(SystemExit):
        main(base + ["--family", "consistency", "--init-from", str(tmp_path / "flow"), "--results-dir", str(tmp_path / "x")])


def test_diffusers_consistency_model_loads_through_the_unet_adapter(tmp_path):
    """A tiny random UNet2DModel + CMStochasticIterativeScheduler (the layout of openai's cd/ct
    checkpoints in diffusers): x̂0 equals diffusers' own consistency-model denoising step."""
    from diffusers import CMStochasticIterativeScheduler, UNet2DModel
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=10)
    sched = CMStochasticIterativeScheduler(sigma_max=40.0)
    unet.save_pretrained(str(tmp_path / "unet"))
    sched.save_pretrained(str(tmp_path / "scheduler"))
    assert json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == \
        "CMStochasticIterativeScheduler"
    bb = load_backbone(str(tmp_path))
    assert isinstance(bb, DiffusersUNetBackbone) and bb.family.name == "consistency" and bb.family.sigma_max == 40.0
    x_t = torch.randn(2, 3, 8, 8)
    sigma = torch.tensor([0.7, 12.0])
    y = torch.tensor([4, 7])
    xh, _ = bb.predict(x_t, sigma.double(), y)
    with torch.no_grad():
        c_skip, c_out = sched.get_scalings_for_boundary_condition(sigma.reshape(-1, 1, 1, 1))
        model_in = x_t / (sigma.reshape(-1, 1, 1, 1) ** 2 + 0.5 ** 2).sqrt()
        timesteps = torch.as_tensor(sched.sigma_to_t(sigma.numpy()), dtype=torch.float32).reshape(-1)  # 250·ln σ
        out = unet(model_in, timesteps, class_labels=y).sample
        want = (c_out * out + c_skip * x_t).clamp(-1, 1)
    assert torch.allclose(xh, want, atol=1e-5)
