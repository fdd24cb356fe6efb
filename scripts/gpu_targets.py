"""Check the GPU targets (issues #10, #21) against the table ``python -m ltu_fast.bench`` printed.

    python scripts/gpu_targets.py build/gpu_check/bench.log [build/gpu_check/rest.log ...]

Targets, fp32 rows, each fused step (SGD and AdamW) against its own floor ("x floor" as the bench
defines it): on ResNet-18 shapes the CUDA step replayed from a CUDA graph (``cuda+graph``: the
kernels' time, no Python launch cost) at most 1.5x; on every model of 100M parameters or more the
eager CUDA step (``cuda``, back-to-back as a training loop runs it) at most 1.15x for K = 2 and
1.2x for K = 3, 4; Triton within 1.3x of CUDA on every configuration both ran, eager against eager
and graph against graph. bf16 rows are reported, not judged. Prints one verdict per target; exit
status 1 if a target is missed, 2 if the log holds no cuda rows to judge.
"""

from __future__ import annotations

import sys
from pathlib import Path

RESNET_FLOOR, LARGE_FLOOR, LARGE_K_FLOOR, LARGE_PARAMS_M, TRITON_VS_CUDA = 1.5, 1.15, 1.2, 100.0, 1.3


def parse(text: str) -> list[dict]:
    """Rows of the bench table: model, params (M), tensors, K, dtype, rule, variant, ms, x floor, vs foreach."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) != 10 or not f[1].endswith("M") or not f[9].endswith("x"):
            continue
        try:
            rows.append({"model": f[0], "params_m": float(f[1][:-1]), "k": int(f[3]), "dtype": f[4], "rule": f[5],
                         "variant": f[6], "ms": float(f[7]), "x_floor": float(f[8])})
        except ValueError:
            continue
    return rows


def _floor_target(r: dict) -> tuple[str, float] | None:
    """(variant judged, allowed x floor) for a configuration, or None where no floor target applies."""
    if r["dtype"] != "float32":
        return None
    if r["model"] == "resnet18":
        return "cuda+graph", RESNET_FLOOR
    if r["params_m"] >= LARGE_PARAMS_M:
        return "cuda", LARGE_FLOOR if r["k"] == 2 else LARGE_K_FLOOR
    return None


def verdicts(rows: list[dict]) -> list[tuple[bool, str]]:
    out = []
    by_key = {(r["model"], r["k"], r["dtype"], r["rule"], r["variant"]): r for r in rows}
    for (model, k, dtype, rule, variant), r in sorted(by_key.items()):
        name = f"{model} K={k} {dtype} {rule}"
        target = _floor_target(r)
        if target is not None and variant == target[0]:
            out.append((r["x_floor"] <= target[1], f"{name}: {variant} {r['x_floor']:.2f}x floor (<= {target[1]})"))
        if variant.startswith("triton"):
            base = by_key.get((model, k, dtype, rule, variant.replace("triton", "cuda")))
            if base is not None:
                ratio = r["ms"] / base["ms"]
                text = f"{name}: {variant} {ratio:.2f}x {base['variant']} (<= {TRITON_VS_CUDA})"
                out.append((ratio <= TRITON_VS_CUDA, text))
    return out


def main(argv: list[str]) -> int:
    rows = [row for path in argv for row in parse(Path(path).read_text())]
    results = verdicts(rows)
    if not results:
        print("targets: no cuda rows in the bench log to judge")
        return 2
    for ok, text in results:
        print(f"[{'ok' if ok else 'MISS'}] {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
