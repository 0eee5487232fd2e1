"""Fixtures for tests/nets.rs: a seeded `stage1.onnx` whose veil has an `APool` (model.py),
and with `--tglobal` also the TNet's global context, with random weights scaled so that every
part of it moves the output, one input and the PyTorch outputs:

    python -m derain_train.apool_fixture ../tests/fixtures/nets/apool
    python -m derain_train.apool_fixture ../tests/fixtures/nets/tglobal --tglobal
"""

import sys
from pathlib import Path

import numpy as np
import torch

from .export_full import export_onnx
from .model import Veil


def main(argv=None):
    args = argv or sys.argv[1:]
    fx = Path(args[0])
    tglobal = "--tglobal" in args[1:]
    fx.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(11)
    veil = Veil(apool=True, tglobal=tglobal)
    with torch.no_grad():
        for p in veil.apool.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
        if tglobal:
            for p in veil.tglobal.parameters():
                p.copy_(torch.randn_like(p) * 1.0)
        # An open gate and T spread over (t0, 1), as trained networks have.
        veil.anet.gate.bias.fill_(2.0)
        veil.tnet.out.weight.copy_(torch.randn_like(veil.tnet.out.weight) * 0.5)
        veil.tnet.out.bias.fill_(0.0)
    dyn = {2: "h", 3: "w"}
    export_onnx(veil, (torch.rand(1, 33, 16, 24),), fx / "stage1.onnx", ["x_lf"],
                ["transmission", "atmosphere"], {"x_lf": dyn, "transmission": dyn})
    x_lf = torch.rand(1, 33, 12, 20)
    with torch.no_grad():
        t, a = veil(x_lf)
    for name, v in [("x_lf", x_lf), ("transmission", t), ("atmosphere", a)]:
        np.save(fx / f"{name}.npy", v.numpy())
    print(f"A = {a[0].tolist()}, T in [{float(t.min()):.3f}, {float(t.max()):.3f}]")


if __name__ == "__main__":
    main()
