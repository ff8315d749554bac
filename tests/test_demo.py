"""Issue: `make demo`. The procedural pipeline end to end on the tiny budget, every stage's output."""
import json

import numpy as np
import pytest

from rdpm_gddcm import demo


@pytest.mark.slow
def test_demo_pipeline_tiny(tmp_path):
    s = demo.run(tmp_path / "demo", size="tiny")
    out = tmp_path / "demo"
    assert (out / "backbone" / "backbone.safetensors").exists() and (out / "backbone" / "backbone.json").exists()
    rec = json.loads((out / "reconstruct" / "metrics.json").read_text())
    assert rec["num_images"] == 16 and rec["psnr"] > 10 and (out / "reconstruct" / "reconstructions.png").exists()
    man = json.loads((out / "tokens" / "manifest.json").read_text())
    assert man["num_images"] == 32 and man["has_states"]
    assert (out / "generator" / "generator.safetensors").exists()
    arr = np.load(out / "samples" / "samples.npz")
    assert arr["arr_0"].shape == (8, 16, 16, 3) and arr["arr_0"].dtype == np.uint8
    assert (out / "samples" / "grid.png").exists()
    m = json.loads((out / "samples" / "metrics.json").read_text())
    assert "fid" not in json.dumps(m).lower().replace("not fid", "")    # never labelled FID
    cifar = np.load(out / "cifar10" / "samples.npz")                      # part (a): the shipped generator
    n, h, w, c = cifar["arr_0"].shape                                      # 64 px: the latent generator
    assert (n, c) == (20, 3) and h == w and h in (32, 64) and (out / "cifar10" / "grid.png").exists()
    again = demo.run(out, size="tiny")                                   # re-running reuses every stage
    assert all(st.get("reused") for st in again["stages"]) and len(again["stages"]) == 7
    assert s["outputs"]["sample_grid"].endswith("grid.png")
