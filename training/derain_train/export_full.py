"""Export one size of the `full` networks to ONNX (`streak.onnx`, `stage1.onnx`,
`stage2.onnx` and `manifest.json` in one folder, the layout `--model DIR` reads):

    python -m derain_train.export_full --streak runs/fast/weights.pt --size fast \\
        --veil runs/veil/weights.pt --models ../models/fast

`--veil` takes a FullModelV2 state dict (train_full.py), or an older `stage1.onnx` /
`stage2.onnx` pair's folder (their TNet, ANet and G initializers load by name). Opset 17,
NCHW float32, dynamic sizes: the streak network's H and W are multiples of 16, the others'
multiples of 4.
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from PIL import Image

from .guided_filter import guided_bank, residue
from .model import PAD_MULTIPLE, T0, WORK_LINES, FullModelV2, Stage2, Veil, count_params
from .streak import MULTIPLE, StreakNet, macs_per_pixel

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


def write_bank_fixtures(fx):
    """The residue-guided bank (float64) on a small odd-sized image (tests/nets.rs)."""
    img = torch.from_numpy(scene(29, 41, seed=3)).float()[None]
    np.save(fx / "bank_input.npy", img[0].numpy())
    with torch.no_grad():
        lf = guided_bank(residue(img.double()), img.double())
    np.save(fx / "bank_output.npy", lf[0].float().numpy())


def onnx_state(path, prefix_map):
    """Initializers of an ONNX file as a state dict, renamed by `prefix_map` (old → new)."""
    import onnx
    from onnx import numpy_helper
    out = {}
    for init in onnx.load(str(path)).graph.initializer:
        for old, new in prefix_map.items():
            if init.name.startswith(old):
                out[new + init.name[len(old):]] = torch.from_numpy(numpy_helper.to_array(init).copy())
    return out


def load_streak(path, size):
    st = torch.load(path, map_location="cpu")
    st = st.get("model", st)
    st = {k[len("streak."):] if k.startswith("streak.") else k: v for k, v in st.items()
          if not k.startswith(("veil.", "stage2."))}
    net = StreakNet(size)
    net.load_state_dict(st)
    return net


def load_veil_refine(path):
    """The veil and refinement networks from a FullModelV2 state dict or a folder of ONNX files;
    the veil has an `APool` (a `tglobal` map) when the state dict has its weights."""
    p = Path(path)
    if p.is_dir():
        vst = onnx_state(p / "stage1.onnx", {"tnet.": "tnet.", "anet.": "anet.", "apool.": "apool.",
                                                  "tglobal.": "tglobal."})
        st = {"stage2." + k: v for k, v in onnx_state(p / "stage2.onnx", {"g.": "g."}).items()}
    else:
        st = torch.load(p, map_location="cpu")
        st = st.get("model", st)
        vst = {k[len("veil."):]: v for k, v in st.items() if k.startswith("veil.")}
    veil = Veil(apool=any(k.startswith("apool.") for k in vst),
                tglobal=any(k.startswith("tglobal.") for k in vst))
    refine = Stage2()
    veil.load_state_dict(vst)
    refine.load_state_dict({k[len("stage2."):]: v for k, v in st.items()
                            if k.startswith("stage2.")})
    return veil, refine


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streak", required=True, help="streak weights (train_streak.py) or a "
                    "FullModelV2 state dict")
    ap.add_argument("--size", required=True, choices=["fast", "quality"])
    ap.add_argument("--veil", required=True, help="FullModelV2 state dict, or a folder with an "
                    "older stage1.onnx and stage2.onnx")
    ap.add_argument("--models", required=True, help="output folder")
    ap.add_argument("--card-extra", default=None, help="JSON file merged into manifest.json")
    ap.add_argument("--fixtures", default=None,
                    help="also write the Rust parity fixtures (tests/fixtures/nets/SIZE)")
    args = ap.parse_args(argv)
    out = Path(args.models)
    out.mkdir(parents=True, exist_ok=True)
    streak = load_streak(args.streak, args.size)
    veil, refine = load_veil_refine(args.veil)
    dyn = {2: "h", 3: "w"}
    export_onnx(streak, (torch.rand(1, 3, 2 * MULTIPLE, 3 * MULTIPLE),), out / "streak.onnx",
                ["image"], ["rain"], {"image": dyn, "rain": dyn})
    export_onnx(veil, (torch.rand(1, 33, 16, 24),), out / "stage1.onnx", ["x_lf"],
                ["transmission", "atmosphere"], {"x_lf": dyn, "transmission": dyn})
    export_onnx(refine, (torch.rand(1, 4, 16, 24),), out / "stage2.onnx", ["x"],
                ["residual"], {"x": dyn, "residual": dyn})
    names = ("streak.onnx", "stage1.onnx", "stage2.onnx")
    manifest = {
        "version": 2,
        "size": args.size,
        "opset": OPSET,
        "layout": "NCHW float32, RGB order, values in [0,1]",
        "streak_multiple": MULTIPLE,
        "work_lines": WORK_LINES,
        "pad_multiple": PAD_MULTIPLE,
        "min_transmission": T0,
        "params": {"streak": count_params(streak), "stage1": count_params(veil),
                   "stage2": count_params(refine)},
        "streak_kmac_per_pixel": round(macs_per_pixel(args.size) / 1e3, 3),
        "sha256": {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names},
    }
    if args.card_extra:
        manifest.update(json.loads(Path(args.card_extra).read_text()))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if args.fixtures:
        write_fixtures(Path(args.fixtures), streak, veil, refine, args.size)
        write_bank_fixtures(Path(args.fixtures).parent)
    print(json.dumps(manifest, indent=2))


def write_fixtures(fx, streak, veil, refine, size):
    """Seeded inputs and the PyTorch outputs, read by tests/nets.rs: each network on its own
    input, and the whole pipeline (FullModelV2 without the physics gate) on a small image."""
    fx.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    with torch.no_grad():
        x = torch.from_numpy(scene(48, 80, seed=4)).float()[None]
        r = streak(x)
        x_lf = torch.rand(1, 33, 12, 20)
        t, a = veil(x_lf)
        x2 = torch.rand(1, 4, 12, 20)
        dj = refine(x2)
    for name, v in [("streak_input", x), ("streak_rain", r), ("stage1_x_lf", x_lf),
                    ("stage1_transmission", t), ("stage1_atmosphere", a), ("stage2_x", x2),
                    ("stage2_residual", dj)]:
        np.save(fx / f"{name}.npy", v.numpy())
    # The whole pipeline on an 8-bit image whose working factor is 2 and whose size is a
    # multiple of 16 (no padding on either side).
    save_png(fx / "full_input.png", scene(272, 368, seed=5))
    img = torch.from_numpy(load_png(fx / "full_input.png"))[None]
    full = FullModelV2(size)
    full.streak, full.veil, full.stage2 = streak, veil, refine
    full.eval()
    with torch.no_grad():
        o = full(img, 2)
    np.save(fx / "full_output_mean4.npy", torch.nn.functional.avg_pool2d(o["j"], 4)[0].numpy())
    np.save(fx / "full_atmosphere.npy", o["a"][0].numpy())


if __name__ == "__main__":
    main()
