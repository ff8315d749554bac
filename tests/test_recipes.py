"""The ImageNet recipes (train/imagenet.sh, sample/imagenet.sh) are valid bash, and with DRY_RUN=1 every
command they print uses only flags its program accepts: the rdpm_gddcm modules' own parsers (values
and choices included), ``accelerate launch``, ``hf download`` and ``curl``. A recipe with a wrong
flag would fail hours into a run, so this is checked without running anything heavy."""
import contextlib
import importlib
import importlib.metadata
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["train/imagenet.sh", "sample/imagenet.sh"]
ALL_STAGES = {"train/imagenet.sh": "fetch tokenize train", "sample/imagenet.sh": "fetch sample eval"}
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash not installed")


def dry_run(recipe: str, **env) -> list[list[str]]:
    """The commands ``recipe`` prints with DRY_RUN=1, split like the shell would."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "DRY_RUN": "1", **env}
    r = subprocess.run([BASH, recipe], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [shlex.split(line) for line in r.stdout.splitlines() if line.strip()]


def flags(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def assert_flags_in_help(used: list[str], help_text: str, program: str):
    """Each flag must appear verbatim (argparse would also accept unambiguous abbreviations)."""
    for f in used:
        assert re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", help_text), f"{program} has no flag {f}"


def module_parser(name: str):
    """(parse function, help text) of an rdpm_gddcm module's command line."""
    mod = importlib.import_module(name)
    parse = mod.parse_args if hasattr(mod, "parse_args") else mod.build_parser().parse_args
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        parse(["--help"])
    return parse, buf.getvalue()


def console_scripts() -> dict:
    """rdpm-* console script -> its module (pyproject's [project.scripts], as installed)."""
    eps = importlib.metadata.entry_points(group="console_scripts")
    return {ep.name: ep.value.split(":")[0] for ep in eps if ep.value.startswith("rdpm_gddcm.")}


def check_module_command(module: str, args: list[str]):
    parse, help_text = module_parser(module)
    assert_flags_in_help(flags(args), help_text, module)
    parse(args)                        # types and choices; SystemExit (a test error) on a bad value


def check_accelerate_launch(args: list[str]) -> tuple[str, list[str]]:
    """Validate the launcher's own flags; return (module, module args) after ``-m``."""
    from accelerate.commands.launch import launch_command_parser
    i = args.index("-m")
    launcher, module, rest = args[:i], args[i + 1], args[i + 2:]
    parser = launch_command_parser()
    known = set(parser._option_string_actions)       # its help output hides groups depending on sys.argv
    for f in flags(launcher):
        assert f in known, f"accelerate launch has no flag {f}"
    parser.parse_args([*launcher, "-m", module])
    return module, rest


def tool_help(exe: str, *help_args: str) -> str:
    r = subprocess.run([exe, *help_args], capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def check_command(cmd: list[str]):
    exe, args = cmd[0], cmd[1:]
    if exe == "accelerate":
        assert args[0] == "launch"
        module, rest = check_accelerate_launch(args[1:])
        check_module_command(module, rest)
    elif exe in console_scripts():
        check_module_command(console_scripts()[exe], args)
    elif exe == "hf":
        hf = Path(sys.executable).parent / "hf"
        if not hf.exists():
            pytest.skip("no hf CLI in this environment")
        assert args[0] == "download"
        assert_flags_in_help(flags(args), tool_help(str(hf), "download", "--help"), "hf download")
    elif exe == "curl":
        if shutil.which("curl") is None:
            pytest.skip("curl not installed")
        assert_flags_in_help(flags(args), tool_help("curl", "--help", "all"), "curl")
    else:
        pytest.fail(f"the recipe runs {exe!r}, which this test cannot check")


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_is_valid_bash(recipe):
    r = subprocess.run([BASH, "-n", recipe], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("recipe", RECIPES)
def test_dry_run_flags_exist(recipe):
    cmds = dry_run(recipe, STAGES=ALL_STAGES[recipe])
    assert cmds
    for cmd in cmds:
        check_command(cmd)


def test_train_recipe_settings():
    cmds = {c[c.index("-m") + 1]: c for c in dry_run("train/imagenet.sh") if "-m" in c}
    tok, train = cmds["rdpm_gddcm.tokenize"], cmds["rdpm_gddcm.train_generator"]
    opt = {a: b for a, b in zip(tok, tok[1:])}
    assert opt["--plan"] == "trajectory" and float(opt["--p"]) == 0.5 and int(opt["--num-steps"]) == 10
    gh, gw = (int(v) for v in opt["--grid"].split("x"))
    assert 32 % gh == 0 and 32 % gw == 0, "the grid must divide the 32x32 SD-VAE latent"
    assert opt["--backbone"].startswith("diffusers-dit:") and opt["--autoencoder"].startswith("hf:")
    assert "--save-states" in tok and "--multi_gpu" in tok
    assert "latest" == train[train.index("--resume-from-checkpoint") + 1]
    assert train[train.index("--mixed-precision") + 1] == "bf16"


def test_train_recipe_without_states():
    """Without cached states the trainer replays them through the backbone (with the class labels when the
    tokens are --conditional), so it needs --backbone."""
    for cond in ("0", "1"):
        cmds = dry_run("train/imagenet.sh", SAVE_STATES="0", CONDITIONAL=cond, NUM_PROCESSES="1")
        train = next(c for c in cmds if "rdpm_gddcm.train_generator" in c)
        assert "--backbone" in train and "--multi_gpu" not in train
        check_command(train)


def test_sample_recipe_settings():
    cmds = dry_run("sample/imagenet.sh")
    sample = next(c for c in cmds if "rdpm_gddcm.sample" in c)
    ev = next(c for c in cmds if c[0] == "rdpm-eval")
    assert sample[sample.index("--num-samples") + 1] == "50000"
    assert ev[ev.index("--reference") + 1].endswith("VIRTUAL_imagenet256_labeled.npz")
    assert "--inception-weights" in ev
    assert ev[ev.index("--samples") + 1] == sample[sample.index("--sample-dir") + 1] + "/samples.npz"
