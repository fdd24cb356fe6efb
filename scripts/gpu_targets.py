"""Check issue #10's GPU targets against the table ``python -m ltu_fast.bench`` printed.

    python scripts/gpu_targets.py build/gpu_check/bench.log

Targets (fp32 rows, the fused cuda step, "x floor" as the bench defines it): at most 1.5x the
floor on ResNet-18, at most 1.15x on every model of 100M parameters or more, and Triton within
1.3x of CUDA on every configuration both ran. Prints one verdict per target; exit status 1 if a
target is missed, 2 if the log holds no cuda rows to judge.
"""

from __future__ import annotations

import sys
from pathlib import Path

RESNET_FLOOR, LARGE_FLOOR, LARGE_PARAMS_M, TRITON_VS_CUDA = 1.5, 1.15, 100.0, 1.3


def parse(text: str) -> list[dict]:
    """Rows of the bench table: model, params (M), tensors, K, dtype, variant, ms, x floor."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) != 9 or not f[1].endswith("M") or not f[8].endswith("x"):
            continue
        try:
            rows.append({"model": f[0], "params_m": float(f[1][:-1]), "k": int(f[3]), "dtype": f[4],
                         "variant": f[5], "ms": float(f[6]), "x_floor": float(f[7])})
        except ValueError:
            continue
    return rows


def verdicts(rows: list[dict]) -> list[tuple[bool, str]]:
    out = []
    cuda = {(r["model"], r["k"], r["dtype"]): r for r in rows if r["variant"] == "cuda"}
    for key, r in sorted(cuda.items()):
        model, k, dtype = key
        name = f"{model} K={k} {dtype}"
        if dtype == "float32" and model == "resnet18":
            out.append((r["x_floor"] <= RESNET_FLOOR, f"{name}: cuda {r['x_floor']:.2f}x floor (<= {RESNET_FLOOR})"))
        elif dtype == "float32" and r["params_m"] >= LARGE_PARAMS_M:
            out.append((r["x_floor"] <= LARGE_FLOOR, f"{name}: cuda {r['x_floor']:.2f}x floor (<= {LARGE_FLOOR})"))
    for r in rows:
        base = cuda.get((r["model"], r["k"], r["dtype"]))
        if r["variant"] == "triton" and base is not None:
            ratio = r["ms"] / base["ms"]
            text = f"{r['model']} K={r['k']} {r['dtype']}: triton {ratio:.2f}x cuda (<= {TRITON_VS_CUDA})"
            out.append((ratio <= TRITON_VS_CUDA, text))
    return out


def main(argv: list[str]) -> int:
    rows = parse(Path(argv[0]).read_text())
    results = verdicts(rows)
    if not results:
        print("targets: no cuda rows in the bench log to judge")
        return 2
    for ok, text in results:
        print(f"[{'ok' if ok else 'MISS'}] {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
