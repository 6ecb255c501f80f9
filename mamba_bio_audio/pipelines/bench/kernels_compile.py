"""Compile a recorded Triton launch for a GPU target without a GPU, and read what the compiled kernel costs.

:func:`compile_launch` specialises the launch's arguments exactly as ``JITFunction.run`` would (Triton's own
binder: dtypes, 16-byte alignment, divisibility of the ints, constexprs, ``num_warps``), compiles for
``GPUTarget("cuda", arch, 32)`` and reads the cubin with the tools shipped in Triton's wheel: ``ptxas -v`` on the
same PTX (registers, spill stores/loads, stack frame: the log of Triton's own ptxas run, or the same ptxas with
Triton's flags again when the kernel came from Triton's cache), the compiled metadata
(shared memory, num_warps) and ``nvdisasm`` (the SASS, for :mod:`.kernels_sass`). Results are cached per
specialisation for the life of the process: launches of many shapes share few compiled kernels.
"""
from __future__ import annotations

import contextlib
import io
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mamba_bio_audio import ops

__all__ = ["Compiled", "check_compilable", "compile_launch", "kernel_name", "toolchain", "ARCHS"]

ARCHS = {"sm_80": 80, "sm_90": 90}


@dataclass
class Compiled:
    """What one compiled specialisation costs. ``sass`` is the disassembly (not written to JSON)."""

    kernel: str
    arch: str
    registers: int
    spill_store_bytes: int
    spill_load_bytes: int
    stack_bytes: int
    shared_bytes: int
    num_warps: int
    compile_s: float
    sass: str = field(repr=False, default="")

    def fields(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("sass", "kernel", "arch")}


def kernel_name(kernel) -> str:
    return getattr(kernel, "__name__", None) or kernel.fn.__name__


def check_compilable() -> None:
    """ValueError unless the kernels can be compiled here: triton installed, its interpreter off."""
    if ops.triton_interpreter_on():
        raise ValueError("TRITON_INTERPRET=1 is set: the kernels are built for the interpreter and cannot be compiled "
                         "for a GPU target; unset it for a compile-only report")
    try:
        import triton  # noqa: F401
    except ImportError as err:
        raise ValueError(f"compiling the kernels needs triton ({err}); install the 'triton' extra") from err


def _triton():
    check_compilable()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    return triton, GPUTarget, ASTSource, make_backend, create_function_from_signature


def toolchain() -> dict:
    """Triton's version and the ptxas it compiles with for each target."""
    triton = _triton()[0]
    from triton.backends.nvidia.compiler import get_ptxas

    versions = {}
    for name, arch in ARCHS.items():
        out = subprocess.run([get_ptxas(arch).path, "--version"], capture_output=True, text=True).stdout
        versions[name] = (re.findall(r"release [\d.]+, V[\d.]+", out) or [out.strip()[-40:]])[0]
    return {"triton": triton.__version__, "ptxas": versions}


_binders: dict = {}
_compiled: dict = {}


def _specialise(launch, arch: int):
    """(src, target, options dict, cache key) of ``launch`` for ``arch``, by Triton's own binder."""
    triton, GPUTarget, ASTSource, make_backend, create_function_from_signature = _triton()
    from triton import knobs

    kernel = launch.kernel
    target = GPUTarget("cuda", arch, 32)
    key = (id(kernel), arch)
    if key not in _binders:
        backend = make_backend(target)
        _binders[key] = backend, create_function_from_signature(kernel.signature, kernel.params, backend)
    backend, binder = _binders[key]
    # the options JITFunction.run adds before binding
    kwargs = dict(launch.kwargs, debug=launch.kwargs.get("debug", kernel.debug) or knobs.runtime.debug)
    for name in ("instrumentation_mode", "fpsan_homomorphic_casts"):
        if hasattr(knobs.compilation, name):
            kwargs[name] = getattr(knobs.compilation, name)
    bound, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    cache_key = (kernel_name(kernel), arch, repr(signature), repr(sorted(constexprs.items())),
                 repr(sorted(attrs.items())), repr(sorted(options.__dict__.items())))
    return ASTSource(kernel, signature, constexprs, attrs), target, options.__dict__, cache_key


_PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")


def _ptxas_report(ptx: str, arch: int, fp_fusion: bool) -> tuple[int, int, int, int]:
    """(registers, stack frame, spill store bytes, spill load bytes) from ``ptxas -v`` with Triton's flags."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        cmd = [get_ptxas(arch).path, "-v", "--regAllocOptLevel=2", *([] if fp_fusion else ["--fmad=false"]),
               f"--gpu-name={sm_arch_from_capability(arch)}", str(src), "-o", str(Path(tmp) / "kernel.cubin")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    parsed = _parse_ptxas(log)
    if parsed is None:
        raise RuntimeError(f"unexpected ptxas -v output: {log[-400:]}")
    return parsed


def _disassemble(cubin: bytes) -> str:
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        return subprocess.run([knobs.nvidia.nvdisasm.path, "-c", str(path)], capture_output=True, text=True,
                              check=True).stdout


def _parse_ptxas(log: str) -> tuple[int, int, int, int] | None:
    regs, frame = _REGS.search(log), _PTXAS.search(log)
    return (int(regs[1]), int(frame[1]), int(frame[2]), int(frame[3])) if regs and frame else None


def _compile_with_log(triton, src, target, options):
    """Compile; the ``ptxas -v`` log Triton printed, or "" when the compile came from Triton's cache."""
    from triton import knobs

    out = io.StringIO()
    with knobs.nvidia.scope(), contextlib.redirect_stdout(out):
        knobs.nvidia.dump_ptxas_log = True
        compiled = triton.compile(src, target=target, options=options)
    return compiled, out.getvalue()


def compile_launch(launch, arch: int, sass: bool = True) -> Compiled:
    """Compile ``launch`` (a recorded ``Launch``) for ``sm_<arch>``; cached per specialisation."""
    src, target, options, key = _specialise(launch, arch)
    if key in _compiled and (_compiled[key].sass or not sass):
        return _compiled[key]
    triton = _triton()[0]
    start = time.perf_counter()
    compiled, log = _compile_with_log(triton, src, target, options)
    resources = _parse_ptxas(log) or _ptxas_report(compiled.asm["ptx"], arch, options.get("enable_fp_fusion", True))
    registers, stack, spill_st, spill_ld = resources
    result = Compiled(kernel_name(launch.kernel), f"sm_{arch}", registers, spill_st, spill_ld, stack,
                      int(compiled.metadata.shared), int(compiled.metadata.num_warps),
                      round(time.perf_counter() - start, 3),
                      _disassemble(compiled.asm["cubin"]) if sass else "")
    _compiled[key] = result
    return result
