"""Which precision a network runs in: ``--mixed-precision {auto,no,fp16,bf16}`` (DESIGN, conventions).

``auto`` (the default of every command that runs a network) picks what is fastest on the hardware
at hand and says why:

- CUDA: bf16 where the device supports it, else fp16.
- CPU: bf16 autocast only where the CPU has native bf16 arithmetic that PyTorch's kernels can
  reach (x86 ``avx512_bf16``/``amx_bf16`` with ATen's AVX-512 kernels and oneDNN not capped below
  its bf16 ISA; aarch64 ``bf16``) *and* a short timing probe of the network itself shows bf16
  faster than fp32; the probe's verdict is cached per machine. Without native bf16, CPU autocast
  emulates bf16 and runs many times slower than fp32, so ``auto`` is fp32 without probing.

The resolved choice is a :class:`Precision` (mode + reason), recorded in every run's config, token
header (``backbone_dtype``) and sample settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

CHOICES = ("auto", "no", "fp16", "bf16")
DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}      # as recorded in token headers
MODE_OF_DTYPE_NAME = {v: k for k, v in DTYPE_NAMES.items()}
HELP = ("autocast precision: auto = bf16 on a CUDA device that supports it (else fp16); on a CPU bf16 only "
        "where it has native bf16 instructions and a short cached timing probe of this network finds bf16 "
        "faster, else fp32 (no). The choice and its reason are recorded in the run's outputs")

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) at or above which its bf16 kernels are native.
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
                     "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT")
PROBE_MARGIN = 0.9          # bf16 must take at most this fraction of fp32's time to be chosen


@dataclass(frozen=True)
class Precision:
    mode: str               # "no" (fp32), "bf16" or "fp16"
    reason: str

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES[self.mode]

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.mode]

    def to_json(self) -> dict:
        return asdict(self)


def cpu_flags() -> set[str]:
    """The CPU feature flags the OS reports (empty where they cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_native_bf16(flags: set[str] | None = None, capability: str | None = None,
                    onednn_isa: str | None = None, machine: str | None = None) -> tuple[bool, str]:
    """(has native bf16 that torch's CPU kernels use, why). Arguments default to this machine."""
    flags = cpu_flags() if flags is None else flags
    capability = (torch.backends.cpu.get_cpu_capability() if capability is None else capability).upper()
    onednn_isa = (os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL") if onednn_isa is None else onednn_isa).upper()
    machine = (platform.machine() if machine is None else machine).lower()
    if machine in ("aarch64", "arm64"):
        if "bf16" in flags:
            return True, "aarch64 CPU with bf16 instructions"
        return False, "aarch64 CPU without bf16 instructions (bf16 would be emulated)"
    hw = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if not hw:
        return False, "CPU without native bf16 (no avx512_bf16/amx_bf16): bf16 autocast would be emulated, far slower"
    if not capability.startswith("AVX512"):
        return False, f"ATen CPU kernels limited to {capability} (ATEN_CPU_CAPABILITY): bf16 would be emulated"
    if onednn_isa not in _ONEDNN_BF16_ISAS:
        return False, f"oneDNN capped at {onednn_isa} (ONEDNN_MAX_CPU_ISA): no native bf16 kernels"
    return True, f"CPU with native bf16 ({', '.join(hw)}), ATen {capability}"


def _cache_file() -> Path:
    from .files import cache_dir
    return cache_dir() / "precision_probes.json"


def _machine_key(probe_key: str) -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [model, platform.machine(), " ".join(sorted(cpu_flags())), torch.__version__,
             torch.backends.cpu.get_cpu_capability(), os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL"),
             str(torch.get_num_threads()), probe_key]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _machine_busy() -> bool:
    """Whether other work held the cores while probing (1-minute load above the core count)."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) + 0.5
    except OSError:
        return False


def _best_time(fn: Callable[[], None], reps: int = 5) -> float:
    """Fastest of ``reps`` runs after a warm-up: other jobs on the machine only ever add time, so
    the minimum is the most repeatable estimate of the network's own cost."""
    fn()                                        # warm-up (allocations, oneDNN primitive creation)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def probe_cpu_bf16(probe: Callable[[torch.dtype | None], None], probe_key: str) -> tuple[bool, str]:
    """Time ``probe(None)`` (fp32) against ``probe(torch.bfloat16)``; the verdict is cached per
    machine (CPU model and flags, torch version, ISA caps, threads) and ``probe_key``."""
    f = _cache_file()
    key = _machine_key(probe_key)
    try:
        cache = json.loads(f.read_text())
    except (OSError, ValueError):
        cache = {}
    hit = cache.get(key)
    if not (isinstance(hit, dict) and {"fp32_s", "bf16_s"} <= set(hit)):
        hit = {"probe": probe_key, "fp32_s": _best_time(lambda: probe(None)),
               "bf16_s": _best_time(lambda: probe(torch.bfloat16))}
        if _machine_busy():
            # other jobs held the cores: use this verdict now, but probe again next time
            hit["note"] = "measured on a busy machine, not cached"
        else:
            cache[key] = hit
            try:                                    # the cache is an optimisation: never fail on it
                from .files import write_json_atomic
                f.parent.mkdir(parents=True, exist_ok=True)
                write_json_atomic(f, cache)
            except OSError:
                pass
    faster = hit["bf16_s"] <= PROBE_MARGIN * hit["fp32_s"]
    return faster, (f"timing probe ({probe_key}): bf16 {hit['bf16_s'] * 1e3:.0f} ms vs fp32 "
                    f"{hit['fp32_s'] * 1e3:.0f} ms" + (f" ({hit['note']})" if hit.get("note") else ""))


def resolve_precision(requested: str, device, probe: Callable[[torch.dtype | None], None] | None = None,
                      probe_key: str = "") -> Precision:
    """The precision to run in. ``probe(dtype)`` runs one representative step of the network under
    autocast ``dtype`` (None = fp32); it is only called on a CPU with native bf16."""
    if requested not in CHOICES:
        raise ValueError(f"--mixed-precision {requested!r} is not one of {', '.join(CHOICES)}")
    dev = torch.device(device or "cpu").type
    if requested != "auto":
        note = "requested"
        if requested == "bf16" and dev == "cpu":
            native, why = cpu_native_bf16()
            if not native:
                note = f"requested, although slow here: {why}"
        return Precision(requested, note)
    if dev == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: CUDA device with bf16 support")
        return Precision("fp16", "auto: CUDA device without bf16 support")
    if dev != "cpu":
        return Precision("no", f"auto: fp32 on {dev}")
    native, why = cpu_native_bf16()
    if not native:
        return Precision("no", f"auto: {why}")
    if probe is None:
        return Precision("no", f"auto: {why}, but no timing probe for this network: fp32")
    faster, measured = probe_cpu_bf16(probe, probe_key)
    return Precision("bf16" if faster else "no", f"auto: {why}; {measured}")


def shared_precision(precision: Precision, state) -> Precision:
    """The main process's precision, on every process of an ``accelerate`` run. Each process resolves
    ``auto`` on its own, and two timing probes can disagree near the margin; outputs that one header
    or one settings file describes must all be made in the precision it records."""
    if state.num_processes == 1:
        return precision
    from accelerate.utils import broadcast_object_list
    box = [precision.to_json()]
    broadcast_object_list(box, from_process=0)
    return Precision(**box[0])


def autocast(device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``'s type (a no-op context for None)."""
    dev = torch.device(device).type
    return torch.autocast(dev, dtype=dtype or torch.float32, enabled=dtype is not None)
