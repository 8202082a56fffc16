"""The CPU this runs on, and the choices that follow from it: which precision `--precision auto` runs, and whether
training may use bfloat16. Both rules live here, torch-free, so the CLI and training read the same facts."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

# Instruction-set features that decide a choice below (as Linux's /proc/cpuinfo names them)
VNNI = ("avx512_vnni", "avx_vnni", "amx_int8")  # u8 x s8 products summed straight into 32 bits: exact
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")  # bfloat16 arithmetic in hardware; without them autocast emulates it
SHOWN = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
X86_64 = ("x86_64", "amd64")
# Without VNNI, ONNX Runtime's u8 x s8 kernels (AVX2, AVX-512) add two products into a saturating 16-bit sum
# (VPMADDUBSW). With weights in [-64, 64] (7 bits) two products reach at most 2 * 255 * 64 = 32,640 < 32,767, so the
# sum is exact and every kernel computes the same integers.
MAX_EXACT_WEIGHT = 32767 // (2 * 255)  # 64: the largest |weight| two u8 x s8 products can carry without saturating


@dataclass(frozen=True)
class Cpu:
    """This machine's processor: architecture, model name and instruction-set flags (empty when unknown)."""

    arch: str
    model: str
    flags: frozenset[str]

    @property
    def x86_64(self) -> bool:
        return self.arch.lower() in X86_64

    def has(self, *features: str) -> bool:
        """Whether the CPU has any of `features`."""
        return any(f in self.flags for f in features)

    def shown(self) -> list[str]:
        """The flags that decide faceverify's choices, those present."""
        return [f for f in SHOWN if f in self.flags]

    def describe(self) -> str:
        """One line: model, architecture and the deciding flags."""
        flags = ", ".join(self.shown()) if self.flags else "instruction-set flags unknown"
        return f"{self.model or 'unknown CPU'} ({self.arch}; {flags or 'none of ' + ', '.join(SHOWN)})"

    def as_dict(self) -> dict:
        return {"arch": self.arch, "model": self.model, "features": self.shown()}


def parse_cpuinfo(text: str, arch: str) -> Cpu:
    """A Cpu from the text of /proc/cpuinfo (its first processor's model name and flags)."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return Cpu(arch, model, flags)


@functools.cache
def this_cpu() -> Cpu:
    """This machine's CPU (Linux reads /proc/cpuinfo; elsewhere the flags are unknown)."""
    arch = platform.machine()
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"), arch)
    except OSError:
        return Cpu(arch, platform.processor(), frozenset())


@dataclass(frozen=True)
class Choice:
    """A precision picked for this CPU, and why, in words."""

    precision: str
    reason: str

    def as_dict(self) -> dict:
        return {"precision": self.precision, "reason": self.reason}


def int8_integers_exact(cpu: Cpu, weight_max_abs: int | None) -> tuple[bool, str]:
    """Whether ONNX Runtime's int8 kernels compute this model's integer products exactly on `cpu`, and why."""
    if not cpu.x86_64:
        return False, f"int8 is verified on x86-64 only; this CPU is {cpu.arch}"
    if cpu.has(*VNNI):
        return True, "VNNI sums u8 x s8 products in 32 bits: exact for any weights"
    if not cpu.has("avx2"):
        return False, "int8 is verified on x86-64 CPUs with AVX2; this one has none (or its flags are unknown)"
    if weight_max_abs is not None and weight_max_abs <= MAX_EXACT_WEIGHT:
        return True, (f"AVX2 without VNNI adds pairs of products in 16 bits, and weights within +-{weight_max_abs} keep "
                      "every pair below saturation: exact")
    return False, ("AVX2 without VNNI adds pairs of products in a saturating 16-bit sum, and this int8 model's weights "
                   f"{'are unrecorded' if weight_max_abs is None else f'reach {weight_max_abs}'} (exact up to "
                   f"{MAX_EXACT_WEIGHT}; quantize it again: python -m export.quantize)")


def auto_precision(quantization: dict, cpu: Cpu | None = None) -> Choice:
    """What `--precision auto` runs on the CPU provider, given the int8 sibling's quantization record: int8 only
    where it passed its agreement check and its integers are exact on this CPU; fp32 wherever int8 could differ."""
    cpu = cpu or this_cpu()
    agreement = quantization.get("agreement")
    if not isinstance(agreement, dict) or not agreement.get("enforced"):
        return Choice("fp32", "the int8 model carries no enforced agreement check against fp32")
    try:
        passed = (agreement["decisions_agree"] >= agreement["min_agreement"]
                  and agreement["fp32_auc"] - agreement["int8_auc"] <= agreement["max_auc_drop"])
    except (KeyError, TypeError):
        passed = False
    if not passed:
        return Choice("fp32", "the int8 model's recorded agreement with fp32 misses its limits")
    largest = quantization.get("weight_max_abs")
    exact, why = int8_integers_exact(cpu, largest if isinstance(largest, int) else None)
    if not exact:
        return Choice("fp32", why)
    return Choice("int8", f"{why}; it decided as fp32 on {agreement['decisions_agree']:.2%} of "
                          f"{agreement.get('pairs', '?')} validation pairs")


def training_precision(requested: str, cuda_bf16: bool | None = None, cpu: Cpu | None = None) -> Choice:
    """The precision a run trains in: `requested` unless it is "auto", which picks bfloat16 autocast where the
    device computes it natively (a CUDA GPU with bf16, a CPU with AVX-512 BF16 or AMX) and float32 elsewhere,
    where emulated bfloat16 is slower than float32. `cuda_bf16` is None when training on the CPU."""
    if requested != "auto":
        return Choice(requested, "asked for")
    if cuda_bf16 is not None:
        return Choice("bf16" if cuda_bf16 else "fp32",
                      "auto: the GPU " + ("computes bfloat16 natively" if cuda_bf16 else "has no native bfloat16"))
    cpu = cpu or this_cpu()
    if cpu.has(*NATIVE_BF16):
        return Choice("bf16", f"auto: the CPU computes bfloat16 natively ({', '.join(f for f in NATIVE_BF16 if cpu.has(f))})")
    return Choice("fp32", f"auto: the CPU has no native bfloat16 ({' or '.join(NATIVE_BF16)}), where bfloat16 is "
                          "emulated and slower than float32")
