"""Every command in pyproject's [project.scripts] starts as ``python -m MODULE`` (how the recipes and
``accelerate launch -m`` call it) and shows its --help; the CIFAR-10 recipes under train/,
tokenizer/ and sample/ are valid bash and print their commands with DRY_RUN=1."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(set(re.findall(r'^rdpm-[\w-]+ = "(rdpm_gddcm\.\w+):main"', (ROOT / "pyproject.toml").read_text(), re.M)))
RECIPES = ["train/cifar10.sh", "tokenizer/cifar10.sh", "sample/cifar10.sh"]


def test_every_command_is_listed():
    assert len(MODULES) == 8 and "rdpm_gddcm.evaluate" in MODULES and "rdpm_gddcm.init_prior" in MODULES


@pytest.mark.parametrize("module", MODULES + ["rdpm_gddcm.classifier"])
def test_module_entry_point_help(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage" in r.stdout.lower()


@pytest.mark.parametrize("recipe", RECIPES)
def test_cifar10_recipe_dry_run(recipe):
    stages = {"train/cifar10.sh": "backbones classifier tokenize generator tokenize-pixels generator-pixels",
              "tokenizer/cifar10.sh": "tokenize tokenize-pixels tables",
              "sample/cifar10.sh": "sample evaluate benchmarks"}[recipe]
    r = subprocess.run(["bash", recipe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "STAGES": stages})
    assert r.returncode == 0, r.stderr
    cmds = [ln for ln in r.stdout.splitlines() if ln.startswith("+ ")]
    assert cmds and all(("-m rdpm_gddcm." in c) or ("benchmarks/" in c) or ("bash tokenizer/" in c) for c in cmds), cmds
