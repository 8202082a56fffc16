"""The CPU facts faceverify's choices follow: /proc/cpuinfo parsed, int8 trusted only where its integers are exact,
bfloat16 training only where it is native. Each rule is checked on the three CPU kinds our machines come in, whatever
CPU runs the test."""

from __future__ import annotations

import pytest

from verify_cli.cpu import MAX_EXACT_WEIGHT, Cpu, auto_precision, parse_cpuinfo, this_cpu, training_precision

# /proc/cpuinfo excerpts of the three kinds (flags cut to the ones that matter and a few others)
XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: second processor
"""
EPYC_VNNI = "model name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
EPYC_AVX2 = "model name\t: AMD EPYC 7B12\nflags\t\t: fpu sse2 avx avx2 fma\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd asimddp\n"


def _cpu(text: str, arch: str = "x86_64") -> Cpu:
    return parse_cpuinfo(text, arch)


def _int8_record(weight_max_abs: int | None = 64, agree: float = 0.995, enforced: bool = True) -> dict:
    record = {"agreement": {"enforced": enforced, "decisions_agree": agree, "min_agreement": 0.99, "pairs": 4126,
                            "fp32_auc": 0.9625, "int8_auc": 0.9620, "max_auc_drop": 0.005}}
    if weight_max_abs is not None:
        record["weight_max_abs"] = weight_max_abs
    return record


def test_cpuinfo_gives_the_first_processors_model_and_flags() -> None:
    xeon = _cpu(XEON)
    assert xeon.model == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert xeon.has("amx_int8") and not xeon.has("sse4_2") and xeon.x86_64
    assert xeon.shown() == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
                            "amx_bf16"]
    assert _cpu(EPYC_AVX2).describe() == "AMD EPYC 7B12 (x86_64; avx2, fma)"
    arm = _cpu(ARM, "aarch64")
    assert not arm.x86_64 and arm.has("asimddp") and arm.model == ""
    assert "flags unknown" in Cpu("x86_64", "", frozenset()).describe()


def test_this_cpu_reads_the_machine() -> None:
    cpu = this_cpu()
    assert cpu.arch and cpu is this_cpu()  # read once


def test_exact_weight_bound_is_the_16_bit_limit_of_two_products() -> None:
    assert 2 * 255 * MAX_EXACT_WEIGHT <= 32767 < 2 * 255 * (MAX_EXACT_WEIGHT + 1)


@pytest.mark.parametrize(("text", "arch", "weights", "expected"), [
    (XEON, "x86_64", 127, "int8"),  # VNNI: exact for any weights
    (EPYC_VNNI, "x86_64", 127, "int8"),
    (EPYC_AVX2, "x86_64", 127, "fp32"),  # 8-bit weights saturate VPMADDUBSW's 16-bit sums
    (EPYC_AVX2, "x86_64", None, "fp32"),  # an int8 model that does not say
    (EPYC_AVX2, "x86_64", 64, "int8"),  # 7-bit weights cannot
    (XEON, "x86_64", 64, "int8"),
    ("model name\t: old\nflags\t\t: sse2 sse4_2 avx\n", "x86_64", 64, "fp32"),  # no AVX2: not verified
    (ARM, "aarch64", 64, "fp32"),  # not verified
    ("", "x86_64", 64, "fp32"),  # flags unknown
])
def test_auto_runs_int8_only_where_its_integers_are_exact(text: str, arch: str, weights: int | None,
                                                         expected: str) -> None:
    choice = auto_precision(_int8_record(weights), _cpu(text, arch))
    assert choice.precision == expected, choice.reason
    assert choice.reason


@pytest.mark.parametrize("record", [
    {}, _int8_record(enforced=False), _int8_record(agree=0.98), {"agreement": {"enforced": True}},
    {"agreement": "unreadable"},
])
def test_auto_runs_fp32_for_an_int8_model_that_did_not_pass_its_check(record: dict) -> None:
    for text in (XEON, EPYC_VNNI, EPYC_AVX2):
        assert auto_precision(record, _cpu(text)).precision == "fp32"


@pytest.mark.parametrize(("text", "expected"), [(XEON, "bf16"), (EPYC_VNNI, "bf16"), (EPYC_AVX2, "fp32"),
                                                ("model name\t: x\nflags\t\t: avx2 amx_bf16\n", "bf16"), ("", "fp32")])
def test_training_precision_auto_is_bf16_only_where_the_cpu_computes_it(text: str, expected: str) -> None:
    choice = training_precision("auto", cpu=_cpu(text))
    assert choice.precision == expected and choice.reason.startswith("auto: ")


def test_training_precision_keeps_an_explicit_choice_and_follows_a_gpu() -> None:
    avx2 = _cpu(EPYC_AVX2)
    assert training_precision("bf16", cpu=avx2).precision == "bf16"
    assert training_precision("fp32", cpu=_cpu(XEON)).precision == "fp32"
    assert training_precision("auto", cuda_bf16=True, cpu=avx2).precision == "bf16"
    assert training_precision("auto", cuda_bf16=False, cpu=_cpu(XEON)).precision == "fp32"
