"""Export the trained networks to ONNX and write the cross-language fixtures.

    python -m derain_train.export --weights runs/main/weights.pt --models ../models \
        --fixtures ../tests/fixtures/nets

Writes `stage1.onnx` (inputs x_lf, x_hf [1,33,h,w]; outputs transmission [1,1,h,w],
streak_coefs [1,2,h,w], atmosphere [1,3]) and `stage2.onnx` (input x [1,4,h,w]; output
residual [1,3,h,w]), opset 17, h and w dynamic (multiples of 4), plus `manifest.json`.
Fixtures (seeded; read by tests/nets.rs): the bank on a small image, each network on random
inputs, and the whole `full` pipeline on a small image.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .guided_filter import BANK_EPS, BANK_RADII, guided_bank, residue
from .model import PAD_MULTIPLE, T0, WORK_LINES, FullModel, count_params, macs_per_frame

OPSET = 17


def export_onnx(module, args, path, input_names, output_names, dynamic):
    module.eval()
    torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic, dynamo=False)


def scene(h, w, seed):
    """A seeded test image: smooth colour gradients, blocks, a few bright vertical streaks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.3 + 0.4 * x, 0.4 + 0.3 * y, 0.5 - 0.2 * x * y], 0)
    img += 0.15 * ((np.floor(x * 9) + np.floor(y * 7)) % 2)[None]
    img += 0.03 * rng.standard_normal((3, h, w))
    for _ in range(12):
        cx, cy, ln = rng.integers(w), rng.integers(h), rng.integers(8, 30)
        img[:, cy:cy + ln, cx] += 0.3
    return np.clip(img, 0, 1)


def save_png(path, img):
    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)).save(path)


def load_png(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32).transpose(2, 0, 1) / 255.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--card-extra", default=None, help="JSON file merged into manifest.json")
    args = ap.parse_args(argv)
    models, fx = Path(args.models), Path(args.fixtures)
    models.mkdir(parents=True, exist_ok=True)
    fx.mkdir(parents=True, exist_ok=True)

    model = FullModel()
    model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    model.eval()
    dyn = {2: "h", 3: "w"}
    x = torch.rand(1, 33, 16, 24)
    export_onnx(model.stage1, (x, x), models / "stage1.onnx", ["x_lf", "x_hf"],
                ["transmission", "streak_coefs", "atmosphere"],
                {"x_lf": dyn, "x_hf": dyn, "transmission": dyn, "streak_coefs": dyn})
    export_onnx(model.stage2, (torch.rand(1, 4, 16, 24),), models / "stage2.onnx", ["x"],
                ["residual"], {"x": dyn, "residual": dyn})

    macs = macs_per_frame(model, 720, 1280)
    manifest = {
        "version": 1,
        "opset": OPSET,
        "layout": "NCHW float32, RGB order, values in [0,1]",
        "work_lines": WORK_LINES,
        "pad_multiple": PAD_MULTIPLE,
        "min_transmission": T0,
        "bank": {"radii": list(BANK_RADII), "eps": list(BANK_EPS),
                 "order": "[radius][eps][channel]", "guide": "box-downsampled residue"},
        "params": {"stage1": count_params(model.stage1), "stage2": count_params(model.stage2)},
        "gmac_720p": {k: round(v / 1e9, 3) for k, v in macs.items() if k != "work_size"},
        "work_size_720p": macs["work_size"],
        "sha256": {n: hashlib.sha256((models / n).read_bytes()).hexdigest()
                   for n in ("stage1.onnx", "stage2.onnx")},
    }
    if args.card_extra:
        manifest.update(json.loads(Path(args.card_extra).read_text()))
    (models / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    # --- fixtures ---
    torch.manual_seed(7)
    # 1. the bank (float64 in torch) on a small odd-sized image; guide = residue.
    img = torch.from_numpy(scene(29, 41, seed=3)).float()[None]
    np.save(fx / "bank_input.npy", img[0].numpy())
    with torch.no_grad():
        lf = guided_bank(residue(img.double()), img.double())
    np.save(fx / "bank_output.npy", lf[0].float().numpy())
    # 2. each network on random inputs.
    with torch.no_grad():
        x_lf = torch.rand(1, 33, 12, 20)
        x_hf = torch.rand(1, 33, 12, 20) - 0.5
        t, ab, a = model.stage1(x_lf, x_hf)
        x2 = torch.rand(1, 4, 12, 20)
        dj = model.stage2(x2)
    for name, v in [("stage1_x_lf", x_lf), ("stage1_x_hf", x_hf), ("stage1_transmission", t),
                    ("stage1_streak_coefs", ab), ("stage1_atmosphere", a), ("stage2_x", x2),
                    ("stage2_residual", dj)]:
        np.save(fx / f"{name}.npy", v.numpy())
    # 3. the whole pipeline on an 8-bit image whose working factor is 2 (no padding needed).
    save_png(fx / "full_input.png", scene(272, 360, seed=5))
    img = torch.from_numpy(load_png(fx / "full_input.png"))[None]
    with torch.no_grad():
        o = model(img, 2)
    np.save(fx / "full_output_mean4.npy", F.avg_pool2d(o["j"], 4)[0].numpy())
    np.save(fx / "full_atmosphere.npy", o["a"][0].numpy())
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
