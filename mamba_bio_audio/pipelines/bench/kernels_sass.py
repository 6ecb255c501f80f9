"""The instruction mix of a kernel's SASS (``nvdisasm -c`` output), over its inner loop and over the whole kernel.

The inner loop is the widest backward branch: the instructions from its target label to the branch itself (for
these kernels, the walk over L chunks or over rows). A kernel without a loop has the whole kernel as its body.
Out-of-line blocks the loop jumps to (rare paths placed after ``EXIT``) are not counted. Counts are per warp
(warp-instructions); global bytes are per lane (32 per warp-instruction when every lane is active).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Mix", "mix", "GROUPS"]

_INSTR = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_BRANCH = re.compile(r"`\((\.L_x_\d+)\)")
_WIDTH = {"U8": 1, "S8": 1, "U16": 2, "S16": 2, "64": 8, "128": 16}

# what the report counts: name -> predicate on the opcode
GROUPS = {
    "mufu_ex2": lambda op: op.startswith("MUFU.EX2"),
    "mufu_other": lambda op: op.startswith("MUFU.") and not op.startswith("MUFU.EX2"),
    "ffma": lambda op: op.split(".")[0] in ("FFMA", "FFMA2"),
    "fmul": lambda op: op.split(".")[0] in ("FMUL", "FMUL2"),
    "fadd": lambda op: op.split(".")[0] in ("FADD", "FADD2"),
    "shfl": lambda op: op.startswith("SHFL"),
    "bar": lambda op: op.startswith("BAR"),
    "shared_ld_st": lambda op: op.split(".")[0] in ("LDS", "STS", "LDSM", "STSM"),
    "local_ld_st": lambda op: op.split(".")[0] in ("LDL", "STL"),
}


def _bytes(op: str) -> int:
    """Bytes per lane of a global load/store/atomic from its suffixes (.U16, .64, .128; 4 by default)."""
    for part in op.split(".")[1:]:
        if part in _WIDTH:
            return _WIDTH[part]
    return 4


@dataclass
class Mix:
    """Warp-instruction counts of one stretch of SASS."""

    instructions: int
    groups: dict
    global_load_bytes: int  # per lane
    global_store_bytes: int  # per lane, atomics included

    def per_element(self, num_warps: int, elements: int) -> dict:
        """Thread-instructions (and bytes) per element when ``num_warps`` warps run this stretch once for
        ``elements`` elements: warp count · 32 lanes · num_warps / elements."""
        scale = 32 * num_warps / elements
        out = {"instructions": self.instructions * scale}
        out |= {name: count * scale for name, count in self.groups.items()}
        out |= {"global_load_bytes": self.global_load_bytes * scale,
                "global_store_bytes": self.global_store_bytes * scale}
        return {k: round(v, 3) for k, v in out.items()}


def _count(instrs) -> Mix:
    groups = {name: 0 for name in GROUPS}
    loads = stores = 0
    for op in instrs:
        for name, test in GROUPS.items():
            groups[name] += test(op)
        base = op.split(".")[0]
        if base in ("LDG", "LD"):
            loads += _bytes(op)
        elif base in ("STG", "ST", "RED", "ATOMG", "REDG"):
            stores += _bytes(op)
    return Mix(len(instrs), groups, loads, stores)


def mix(sass: str) -> tuple[Mix, Mix, bool]:
    """(inner-loop mix, whole-kernel mix, whether a loop was found) of ``sass``."""
    labels, instrs = {}, []  # label -> index of the next instruction; (address, opcode, operands)
    for line in sass.splitlines():
        label = _LABEL.match(line.strip())
        if label:
            labels[label[1]] = len(instrs)
            continue
        ins = _INSTR.match(line)
        if ins:
            instrs.append((int(ins[1], 16), ins[2], ins[3]))
    loops = []
    for i, (_, op, operands) in enumerate(instrs):
        target = _BRANCH.search(operands)
        if op.startswith("BRA") and target and labels.get(target[1], i) < i:  # not the self-branch after EXIT
            loops.append((i - labels[target[1]], labels[target[1]], i))
    whole = _count([op for _, op, _ in instrs if op != "NOP"])
    if not loops:
        return whole, whole, False
    _, start, end = max(loops)
    return _count([op for _, op, _ in instrs[start:end + 1] if op != "NOP"]), whole, True
