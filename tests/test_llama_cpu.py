"""Which llama.cpp kernels the embedded model may use: the AMX guard, and that our own build is portable."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from gate.backends.embedded.cpu import _model_param_defaults, build_features, cpu_flags, system_info, use_extra_buffers

SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"})
EPYC = frozenset({"avx2", "fma", "f16c", "bmi2"})
NATIVE_AMX_BUILD = "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
PORTABLE_BUILD = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | REPACK = 1 |"


def test_cpu_flags_are_read_from_the_first_cpu(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_int8\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "avx2", "amx_tile", "amx_int8"}
    assert cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: nothing known, nothing assumed


def test_build_features_parse_llama_cpp_system_info() -> None:
    features = build_features(NATIVE_AMX_BUILD)
    assert features["AMX_INT8"] and features["AVX512"] and features["REPACK"]
    assert build_features("CPU : AVX2 = 1 | AVX512 = 0 |") == {"AVX2": True, "AVX512": False}


@pytest.mark.parametrize(
    ("cpu", "build", "allowed"),
    [
        (SAPPHIRE_RAPIDS, NATIVE_AMX_BUILD, False),  # the crashing combination
        (SAPPHIRE_RAPIDS, PORTABLE_BUILD, True),  # our build has no AMX kernels: the repack buffers stay
        (EPYC, NATIVE_AMX_BUILD, True),  # AMX kernels present but the CPU cannot run them: never chosen
        (EPYC, PORTABLE_BUILD, True),
    ],
)
def test_auto_turns_extra_buffers_off_only_where_cpu_and_build_have_amx(cpu, build, allowed) -> None:
    assert use_extra_buffers("auto", cpu=cpu, build=build_features(build)) is allowed


def test_an_explicit_setting_wins() -> None:
    assert use_extra_buffers("on", cpu=SAPPHIRE_RAPIDS, build=build_features(NATIVE_AMX_BUILD)) is True
    assert use_extra_buffers("off", cpu=EPYC, build=build_features(PORTABLE_BUILD)) is False


def test_model_param_defaults_apply_inside_and_are_restored_after_an_error() -> None:
    import llama_cpp.llama_cpp as bindings

    original = bindings.llama_model_default_params
    with pytest.raises(RuntimeError), _model_param_defaults(use_extra_bufts=False):
        assert bindings.llama_model_default_params().use_extra_bufts is False
        raise RuntimeError("loading failed")
    assert bindings.llama_model_default_params is original
    assert bindings.llama_model_default_params().use_extra_bufts is True  # llama.cpp's default


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the portable flags are for x86-64")
def test_the_installed_llama_cpp_is_the_portable_build() -> None:
    """`make` builds llama-cpp-python without AVX-512 or AMX kernels (the AMX path segfaults on first decode).

    A venv built before the portable flags (or by hand with GGML_NATIVE on an AVX-512 machine) fails here:
    `make clean test` rebuilds it.
    """
    features = build_features(system_info())
    assert features.get("AVX2") and features.get("FMA") and features.get("F16C")
    assert not features.get("AVX512") and not features.get("AMX_INT8"), system_info()
