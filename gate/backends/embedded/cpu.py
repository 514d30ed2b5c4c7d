"""Which llama.cpp kernels the embedded model may use on this CPU, and loading it accordingly.

On CPUs with AMX (Intel Sapphire Rapids and later), a llama.cpp build that includes its AMX kernels
places the weights in an "AMX" extra buffer type, and the first decode segfaults (upstream defect,
llama.cpp issue 20824). Two defences, both here:
- the project builds llama-cpp-python portably (``make``: ``GGML_NATIVE=OFF``, AVX2/FMA/F16C/BMI2, no
  AVX-512, no AMX), so its own build has no AMX kernels and runs the same kernels on AMD and Intel;
- for any other build (a wheel from elsewhere, a native build), extra buffer types are turned off when
  both the CPU and the build have AMX. That also turns off the CPU repack buffers, which costs some speed
  (``benchmarks/results/local_backend.md``) but does not crash.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gate.config import ExtraBuffers

logger = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
AMX_CPU_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
PARALLEL_SEQUENCES = 8
"""Sequences the context holds at once: how many samples of one request are decoded as one batch."""


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags the kernel reports for the first CPU (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    match = re.search(r"^flags\s*:(.*)$", text, flags=re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def build_features(system_info: str) -> dict[str, bool]:
    """Parse ``llama_print_system_info()`` (``"CPU : AVX2 = 1 | AMX_INT8 = 1 | ..."``) into feature -> on."""
    return {name: value == "1" for name, value in re.findall(r"([A-Z][A-Z0-9_]*) = (\d+)", system_info)}


def use_extra_buffers(setting: ExtraBuffers, *, cpu: frozenset[str], build: Mapping[str, bool]) -> bool:
    """Whether llama.cpp may place weights in extra buffer types (CPU repack, AMX).

    ``auto`` allows them unless the CPU has AMX and the build has AMX kernels (the crashing path).
    llama.cpp lists ``AMX_INT8`` in its system info only when the build has it.
    """
    if setting != "auto":
        return setting == "on"
    return not (cpu & AMX_CPU_FLAGS and build.get("AMX_INT8", False))


def system_info() -> str:
    """llama.cpp's description of the CPU features its build uses."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()


def load_llama(path: str, *, n_ctx: int, n_threads: int, extra_buffers: bool) -> Any:
    """Load a ``llama_cpp.Llama`` for our engine, with or without extra buffer types.

    The context holds ``PARALLEL_SEQUENCES`` sequences in one unified KV cache, so the samples of a request
    can share the prompt's cells and be decoded as one batch (``LlamaEngine``); the context keeps all
    ``n_ctx`` cells for one sequence (unified: the cells are shared, not split per sequence).
    """
    from llama_cpp import Llama

    # n_threads_batch defaults to every core; ggml's threads spin while waiting, so prompt evaluation on
    # all cores next to other work (a second model process, the proxy) slowed each call several-fold.
    with (
        _model_param_defaults(use_extra_bufts=extra_buffers),
        _context_param_defaults(n_seq_max=PARALLEL_SEQUENCES, kv_unified=True),
    ):
        model = Llama(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=False,
            verbose=False,
        )
    if bool(model.model_params.use_extra_bufts) != extra_buffers:  # a llama-cpp-python that built params otherwise
        raise RuntimeError(f"llama-cpp-python ignored use_extra_bufts={extra_buffers}; cannot guard the AMX path")
    return model


def _model_param_defaults(**overrides: Any) -> contextlib.AbstractContextManager[None]:
    """Make ``llama_model_default_params()`` return ``overrides`` while a ``Llama`` is constructed."""
    return _param_defaults("llama_model_default_params", overrides)


def _context_param_defaults(**overrides: Any) -> contextlib.AbstractContextManager[None]:
    """Make ``llama_context_default_params()`` return ``overrides`` while a ``Llama`` is constructed."""
    return _param_defaults("llama_context_default_params", overrides)


@contextlib.contextmanager
def _param_defaults(name: str, overrides: Mapping[str, Any]) -> Iterator[None]:
    """Make the llama.cpp binding ``name`` (a ``*_default_params`` function) return ``overrides``, then restore it.

    ``Llama.__init__`` takes no ``use_extra_bufts`` or ``n_seq_max`` argument: it builds the model and
    context parameters from these defaults and loads the weights in the same call, so the defaults are the
    only place to set them.
    """
    import llama_cpp.llama_cpp as bindings

    original = getattr(bindings, name)

    def with_overrides() -> Any:
        params = original()
        for field, value in overrides.items():
            setattr(params, field, value)
        return params

    setattr(bindings, name, with_overrides)
    try:
        yield
    finally:
        setattr(bindings, name, original)
