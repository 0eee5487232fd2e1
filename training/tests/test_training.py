"""Checks of the training package: the bank against a naive definition, shapes and ranges of
the networks, the ONNX export round trip, and that the training scripts run, learn and stop
on their time budget with a checkpoint."""

import math

import numpy as np
import pytest
import torch

from derain_train import slant
from derain_train.guided_filter import BANK_EPS, BANK_RADII, box_mean, guided_bank, residue
from derain_train.losses import perceptual, perceptual_fast, ssim, ssim_box
from derain_train.model import T0, FullModelV2, Stage2, Veil, transmission_floor, work_factor
from derain_train.rain import gaussian_blur
from derain_train.streak import MULTIPLE, SIZES, StreakNet, macs_per_pixel, pad_to_multiple, remove_rain


def naive_box(x: np.ndarray, r: int) -> np.ndarray:
    h, w = x.shape
    out = np.zeros_like(x)
    for y in range(h):
        for xx in range(w):
            out[y, xx] = x[max(0, y - r):y + r + 1, max(0, xx - r):xx + r + 1].mean()
    return out


def naive_guided(i: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    mi, mp = naive_box(i, r), naive_box(p, r)
    var = naive_box(i * i, r) - mi * mi
    cov = naive_box(i * p, r) - mi * mp
    a = cov / (var + eps)
    b = mp - a * mi
    return naive_box(a, r) * i + naive_box(b, r)


@pytest.mark.parametrize("shape,r", [((1, 1), 2), ((2, 3), 1), ((5, 4), 3), ((9, 13), 4)])
def test_box_mean_is_the_in_image_window_mean(shape, r):
    x = np.random.default_rng(0).random(shape)
    got = box_mean(torch.from_numpy(x), r).numpy()
    assert np.abs(got - naive_box(x, r)).max() < 1e-12


def test_bank_matches_the_naive_guided_filter_in_order():
    rng = np.random.default_rng(1)
    img = rng.random((3, 11, 14))
    g = img.max(0) - img.min(0)
    lf = guided_bank(torch.from_numpy(g)[None, None], torch.from_numpy(img)[None])[0].numpy()
    assert lf.shape == (len(BANK_RADII) * len(BANK_EPS) * 3, 11, 14)
    k = 0
    for r in BANK_RADII:
        for e in BANK_EPS:
            for c in range(3):
                assert np.abs(lf[k] - naive_guided(g, img[c], r, e)).max() < 1e-9, (r, e, c)
                k += 1


def test_residue_cancels_grey():
    x = torch.full((1, 3, 4, 4), 0.7)
    assert residue(x).abs().max() == 0


def test_work_factor_matches_rust():
    # src/nets/full.rs: max(1, floor(short / 180 + 0.5))
    assert [work_factor(h, w) for h, w in [(1, 1), (320, 480), (384, 512), (720, 1280),
                                           (1080, 1920), (2160, 3840)]] == [1, 2, 2, 4, 6, 12]


@pytest.mark.parametrize("size", list(SIZES))
def test_streak_network_shapes_start_and_cost(size):
    net = StreakNet(size)
    x = torch.rand(2, 3, 2 * MULTIPLE, 3 * MULTIPLE)
    r = net(x)
    assert r.shape == x.shape
    assert r.abs().max() == 0  # starts as "no rain"
    # Any size: padded to the multiple, cropped back.
    i_s, r = remove_rain(net, torch.rand(1, 3, 37, 53))
    assert i_s.shape == (1, 3, 37, 53) and r.shape == (1, 3, 37, 53)
    assert pad_to_multiple(torch.rand(1, 3, 17, 16)).shape == (1, 3, 32, 16)
    # The documented cost per pixel (models/README.md).
    assert {"fast": 3456, "quality": 16560}[size] == macs_per_pixel(size)


def test_veil_networks_shapes_and_ranges_and_gate():
    torch.manual_seed(0)
    v, s2 = Veil(), Stage2()
    for p in v.parameters():  # random weights, not the zero-initialised heads
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(2, 33, 12, 20)
    t, a = v(x)
    assert t.shape == (2, 1, 12, 20) and a.shape == (2, 3)
    assert t.min() >= T0 - 1e-6 and t.max() <= 1 + 1e-6
    assert a.min() >= 0 and a.max() <= 1
    assert s2(torch.rand(1, 4, 16, 8)).shape == (1, 3, 16, 8)
    # A closed gate (g -> 0) means no veil: T = 1 whatever the TNet says.
    with torch.no_grad():
        v.anet.gate.bias.fill_(-40.0)
        v.anet.gate.weight.zero_()
    t, _ = v(x)
    assert torch.allclose(t, torch.ones_like(t))


def test_apool_reads_a_where_the_veil_is_densest_and_mixes_with_the_anet(tmp_path):
    from derain_train.export_full import load_veil_refine
    from derain_train.model import APool
    pool = APool()  # zero-initialised head: candidates are the block means of I_s
    x = torch.rand(1, 33, 16, 24) * 0.2
    t = torch.ones(1, 1, 16, 24)
    t[..., 4:8, 8:12] = 0.1  # one 4x4 block of dense veil ...
    x[:, :3, 4:8, 8:12] = torch.tensor([0.7, 0.6, 0.5]).view(1, 3, 1, 1)  # ... of this colour
    a_anet = torch.tensor([[0.2, 0.2, 0.2]])
    with torch.no_grad():
        a = pool(x, t, a_anet, mix=False)
        assert torch.allclose(a, torch.tensor([[0.7, 0.6, 0.5]]), atol=0.015)  # 98 % weight
        mixed = pool(x, t, a_anet)  # k = 0.5 at the start
        assert torch.allclose(mixed, 0.5 * (a + a_anet), atol=1e-6)
        pool.keep.bias.fill_(40.0)  # k -> 1: the ANet's A
        assert torch.allclose(pool(x, t, a_anet), a_anet, atol=1e-6)
    # A state dict with an APool loads into a veil that has one; one without, into one without.
    m = FullModelV2("fast", apool=True)
    torch.save(m.state_dict(), tmp_path / "w.pt")
    veil, _ = load_veil_refine(tmp_path / "w.pt")
    assert veil.apool is not None
    torch.save(FullModelV2("fast").state_dict(), tmp_path / "w0.pt")
    assert load_veil_refine(tmp_path / "w0.pt")[0].apool is None


def test_tglobal_starts_as_the_veil_without_it_and_survives_export(tmp_path):
    """The TNet's global context (model.py Veil `tglobal`): zero at the start (the same T as
    without it), it moves T by the frame's pooled features once trained, and its weights go
    through the ONNX export and back."""
    from derain_train.export_full import export_onnx, load_veil_refine
    torch.manual_seed(3)
    plain, glob = Veil(apool=True), Veil(apool=True, tglobal=True)
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.2)
    glob.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(2, 33, 16, 24)
    with torch.no_grad():
        assert torch.equal(plain(x)[0], glob(x)[0])
        torch.nn.init.normal_(glob.tglobal.weight, std=0.5)
        t_glob = glob(x)[0]
    assert (t_glob - plain(x)[0]).abs().max() > 1e-3
    torch.save(FullModelV2("fast", apool=True, tglobal=True).state_dict(), tmp_path / "w.pt")
    assert load_veil_refine(tmp_path / "w.pt")[0].tglobal is not None
    export_onnx(glob, (torch.rand(1, 33, 16, 24),), tmp_path / "stage1.onnx", ["x_lf"],
                ["transmission", "atmosphere"], {"x_lf": {2: "h", 3: "w"}})
    export_onnx(Stage2(), (torch.rand(1, 4, 16, 24),), tmp_path / "stage2.onnx", ["x"],
                ["residual"], {"x": {2: "h", 3: "w"}})
    back, _ = load_veil_refine(tmp_path)
    assert back.tglobal is not None
    with torch.no_grad():
        assert torch.allclose(back(x)[0], t_glob, atol=1e-6)


def test_full_model_output_is_an_image_and_the_physics_gate_switches_the_veil():
    torch.manual_seed(2)
    m = FullModelV2("fast")
    with torch.no_grad():
        torch.nn.init.normal_(m.veil.tnet.out.weight, std=0.5)
    img = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        o, off = m(img, 2), m(img, 2, k=torch.tensor([0.0, 0.0]))
    assert o["j"].shape == (2, 3, 32, 48)
    assert torch.isfinite(o["j"]).all() and o["j"].min() >= 0 and o["j"].max() <= 1
    assert o["t"].min() < 0.99
    assert torch.equal(off["t"], torch.ones_like(off["t"]))  # k = 0: no veil at all


def test_the_floor_keeps_every_block_of_j1_non_negative_and_never_exceeds_the_true_t():
    torch.manual_seed(4)
    a = torch.tensor([[0.62, 0.64, 0.68]])
    t_true = 0.2 + 0.4 * torch.rand(1, 1, 16, 24)
    i_lo = t_true * 0.5 * torch.rand(1, 3, 16, 24) + (1 - t_true) * a[:, :, None, None]
    floor = transmission_floor(i_lo, a)
    assert (floor <= t_true + 1e-6).all()
    t = torch.maximum(torch.full_like(t_true, 0.02), floor)
    assert (i_lo - (1 - t) * a[:, :, None, None]).min() >= -1e-6
    assert (i_lo - (1 - 0.02) * a[:, :, None, None]).min() < -0.1  # it had something to do
    # In the model: the pipeline's T is floored, the network's own T (t_net) is what it said.
    m = FullModelV2("fast")
    with torch.no_grad():
        torch.nn.init.constant_(m.veil.tnet.out.weight, 0.0)
        torch.nn.init.constant_(m.veil.tnet.out.bias, -20.0)  # T_net ≈ 0 everywhere
        o = m(torch.rand(1, 3, 32, 48) * 0.5, 2)
    assert o["t_net"].max() < 0.15 and (o["t"] >= o["t_net"]).all()
    assert (o["j1"] * o["t"] > 1e-4).float().mean() > 0.3, "J₁ is not all clipped to black"


def test_losses_are_zero_on_equal_images_and_positive_otherwise():
    x = torch.rand(1, 3, 32, 32)
    for f in (perceptual, perceptual_fast):
        assert float(f(x, x)) < 1e-6
        assert float(f(x, x.flip(3))) > 0.1
    assert abs(float(ssim(x[:, :1], x[:, :1])) - 1) < 1e-6
    assert abs(float(ssim_box(x[:, :1], x[:, :1])) - 1) < 1e-6


def test_a_few_steps_teach_the_streak_network_to_remove_added_streaks():
    torch.manual_seed(0)
    net = StreakNet("fast")
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    clean = torch.rand(4, 3, 32, 32) * 0.5
    streaks = torch.zeros(4, 1, 32, 32)
    streaks[..., ::5] = 0.4  # bright vertical lines
    rainy = (clean + streaks).clamp(0, 1)
    losses = []
    for _ in range(40):
        loss = (rainy - net(rainy) - clean).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


def test_onnx_export_round_trip(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from derain_train.export_full import export_onnx

    torch.manual_seed(0)
    net = StreakNet("fast")
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    dyn = {2: "h", 3: "w"}
    export_onnx(net, (torch.rand(1, 3, 32, 48),), tmp_path / "s.onnx", ["image"], ["rain"],
                {"image": dyn, "rain": dyn})
    sess = ort.InferenceSession(str(tmp_path / "s.onnx"))
    y = torch.rand(1, 3, 48, 64)
    got = sess.run(None, {"image": y.numpy()})[0]
    want = net(y).detach().numpy()
    assert np.abs(got - want).max() < 1e-4  # float32 summation order differs


def _tiny_bank(root, family="dense", blend="add_clip", n=3, size=64):
    """A `derain synth-bank`-shaped folder made here."""
    import json
    from PIL import Image
    rng = np.random.default_rng(0)
    (root / "rain").mkdir(parents=True)
    lines = []
    for k in range(n):
        a = np.zeros((size, size), np.uint16)
        a[:, rng.integers(0, size, 6)] = 65535
        Image.fromarray(a).save(root / "rain" / f"{k:05d}.png")
        lines.append(json.dumps({"name": f"{k:05d}", "scale": 0.5,
                                 "params": {"style": family, "blend": blend, "beta": 0.0}}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def _tiny_clean(root):
    from PIL import Image
    rng = np.random.default_rng(1)
    root.mkdir(parents=True)
    for name in [f"sun_{i:03d}" for i in range(70)] + [f"urban_{i:03d}" for i in range(90)][-6:]:
        Image.fromarray(rng.integers(0, 255, (72, 80, 3), dtype=np.uint8)).save(root / f"{name}.jpg")


def test_training_scripts_stop_on_their_budget_with_a_checkpoint(tmp_path):
    import time
    from derain_train import train_full, train_streak
    _tiny_bank(tmp_path / "bank")
    _tiny_clean(tmp_path / "clean")
    common = ["--banks", str(tmp_path / "bank"), "--clean", str(tmp_path / "clean"),
              "--size", "fast", "--minutes", "0.05", "--every-min", "0.02", "--batch", "2",
              "--crop", "32", "--threads", "1", "--val-per-family", "1"]
    t = time.time()
    train_streak.main(common + ["--out", str(tmp_path / "streak"), "--val-crop", "32",
                                "--thin", "0.5", "--grainy", "0.5", "--grain", "0.5"])
    st = torch.load(tmp_path / "streak" / "ckpt.pt")
    assert st["step"] > 0 and (tmp_path / "streak" / "weights.pt").exists()
    # Resuming a finished run does nothing more.
    train_streak.main(common + ["--out", str(tmp_path / "streak"), "--val-crop", "32"])
    assert torch.load(tmp_path / "streak" / "ckpt.pt")["step"] == st["step"]
    train_full.main(common + ["--out", str(tmp_path / "veil"), "--frame-t", "5",
                              "--streak", str(tmp_path / "streak" / "weights.pt")])
    w = torch.load(tmp_path / "veil" / "weights.pt")
    assert any(k.startswith("veil.") for k in w) and any(k.startswith("stage2.") for k in w)
    import json
    last = json.loads((tmp_path / "veil" / "log.jsonl").read_text().splitlines()[-1])
    assert set(last["harm"]) == {"veil-free", "clear"} and last["harm"]["clear"][1] == 100.0
    assert time.time() - t < 120


def test_the_weight_average_follows_the_weights_and_survives_a_resume(tmp_path):
    import json

    from derain_train import train_streak
    _tiny_bank(tmp_path / "bank")
    _tiny_clean(tmp_path / "clean")
    torch.manual_seed(0)
    torch.save(StreakNet("fast").state_dict(), tmp_path / "init.pt")
    run = tmp_path / "run"
    common = ["--banks", str(tmp_path / "bank"), "--clean", str(tmp_path / "clean"),
              "--size", "fast", "--batch", "2", "--crop", "32", "--threads", "1",
              "--val-per-family", "1", "--val-crop", "32", "--lr", "1e-2", "--every-min", "0",
              "--init", str(tmp_path / "init.pt"), "--ema", "0.5", "--out", str(run)]
    # One step: the average is half the start and half the new weights.
    train_streak.main(common + ["--steps", "1"])
    w0, w1 = torch.load(tmp_path / "init.pt"), torch.load(run / "weights.pt")
    e1 = torch.load(run / "weights_ema.pt")
    assert any(not torch.equal(w0[k], w1[k]) for k in w0), "the step changed nothing"
    for k in w0:
        assert torch.allclose(e1[k], 0.5 * w0[k] + 0.5 * w1[k], atol=1e-6), k
    # Resumed for a second step, it continues from the stored average, not from the weights.
    train_streak.main(common + ["--steps", "2"])
    w2, e2 = torch.load(run / "weights.pt"), torch.load(run / "weights_ema.pt")
    for k in w0:
        assert torch.allclose(e2[k], 0.5 * e1[k] + 0.5 * w2[k], atol=1e-6), k
    rec = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert rec["step"] == 2 and set(rec["val_ema"]) == set(rec["val"])
    assert math.isfinite(rec["val_gain_db_ema"])
    with pytest.raises(SystemExit):
        train_streak.main(common + ["--steps", "3", "--ema", "1.0"])


def test_the_veil_free_harm_line_has_rain_and_no_veil(tmp_path):
    # train_full.make_harm_val: β = 0 renders (T = 1, rain still there) and untouched crops.
    from derain_train.rain import CleanImages, Composer, RainBank, clean_paths
    from derain_train.train_full import make_harm_val
    _tiny_bank(tmp_path / "bank")
    _tiny_clean(tmp_path / "clean")
    comp = Composer(CleanImages(clean_paths(str(tmp_path / "clean"), "val")),
                    [RainBank(str(tmp_path / "bank"))])
    rng = np.random.default_rng(3)
    b = comp.batch(4, 32, rng, families=["dense"] * 4, veil=False, camera_p=0.0)
    assert torch.all(b["trans"] == 1) and torch.equal(b["veiled"], b["gt"])
    assert (b["in"] - b["gt"]).abs().amax() > 0.1  # the streaks are there
    h = make_harm_val(comp, 3, 32)
    assert set(h) == {"veil-free", "clear"} and torch.equal(h["clear"]["in"], h["clear"]["gt"])
    assert (h["veil-free"]["in"] - h["veil-free"]["gt"]).abs().amax() > 0.1


def test_harm_score_is_high_when_rain_free_input_is_left_alone():
    # select.harm: pooled Y-PSNR of I − R against I. A network that removes nothing scores
    # the cap (100 dB); one that takes a bright layer off every pixel scores that layer's level.
    from derain_train.select import harm

    class Const(torch.nn.Module):
        def __init__(self, level):
            super().__init__()
            self.level = level

        def forward(self, x):
            return torch.full_like(x, self.level)

    x = {"clear": torch.rand(2, 3, 32, 32) * 0.5 + 0.3}
    assert harm(Const(0.0), x)["clear"] > 99
    off = harm(Const(0.1), x)["clear"]
    assert abs(off - 20.0) < 0.2, off


def test_the_pytorch_floor_benchmark_runs_and_reports_every_case(capsys):
    # bench_torch on the CPU (no graph, fp32 only): one JSON line per (size, batch).
    import json
    from derain_train import bench_torch
    bench_torch.main(["--device", "cpu", "--height", "32", "--width", "48", "--batches", "1", "2",
                      "--reps", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["size"], r["batch"]) for r in rows] == [("fast", 1), ("fast", 2), ("quality", 1),
                                                        ("quality", 2)]
    assert all(r["ms_per_frame"] > 0 and r["tmac_per_s"] > 0 for r in rows)


def _lines(angle_deg, size=160, seed=0):
    """Thin bright lines at `angle_deg` from vertical (positive: down-right) on grey."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(size, size)
    a = math.radians(angle_deg)
    for x0, y0 in (torch.rand(50, 2, generator=g) * 1.5 * size - 0.25 * size).tolist():
        for t in np.arange(0, 40, 0.25):
            y, x = int(y0 + t * math.cos(a)), int(x0 + t * math.sin(a))
            if 0 <= y < size and 0 <= x < size:
                img[y, x] = 1.0
    return (gaussian_blur(img[None, None], 0.7) * 0.6 + 0.3).expand(1, 3, size, size)


@pytest.mark.parametrize("angle", [-50, 0, 35, 60])
def test_slant_shear_makes_slanted_lines_vertical_and_undoes_exactly(angle):
    img = _lines(angle)
    canvas, d = slant.shear(img, math.tan(math.radians(angle)))
    # Exact inverse on the image grid: nothing is resampled.
    assert torch.equal(slant.unshear(canvas, d, img.shape[-1]), img)
    # On the canvas the lines are vertical, and the estimate says so.
    theta, conf = slant.orientation(canvas)
    assert abs(theta) <= 8 and conf > 0.5, (theta, conf)


@pytest.mark.parametrize("angle", [-45, -15, 0, 30, 55])
def test_slant_orientation_finds_the_angle_of_thin_bright_lines(angle):
    theta, conf = slant.orientation(_lines(angle))
    assert abs(theta - angle) <= 7 and conf > 0.6, (theta, conf)


def test_the_mirror_ensemble_mirrors_with_its_input():
    from derain_train.ensemble import mirror_ensemble, variants
    torch.manual_seed(3)
    net = StreakNet("fast").eval()
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        a = mirror_ensemble(net, x.flip(-1))
        b = mirror_ensemble(net, x).flip(-1)
        plain, _ = remove_rain(net, x)
        plain_m, _ = remove_rain(net, x.flip(-1))
        v = variants(net, x)
    assert torch.equal(a, b)
    assert not torch.equal(plain_m, plain.flip(-1))
    assert set(v) == {"plain", "mirror", "four", "twice"}
    assert all(t.shape == x.shape for t in v.values())


def test_family_weights_replace_the_named_ones_and_refuse_nonsense():
    import argparse
    from derain_train.rain import FAMILY_WEIGHTS
    from derain_train.train_streak import family_weights
    w = family_weights("screen=0.4, light=0")
    assert w["screen"] == 0.4 and w["light"] == 0.0
    assert w["dense"] == FAMILY_WEIGHTS["dense"]
    for bad in ["rain=1", "screen=x", "screen=-1",
                ",".join(f"{f}=0" for f in FAMILY_WEIGHTS)]:
        with pytest.raises(argparse.ArgumentTypeError):
            family_weights(bad)


def test_the_frame_loss_sees_a_frame_wide_density_and_not_its_shape():
    # train_full.frame_loss: T^s (the density scaled once per frame) is penalised, a T with the
    # same mean ln T but another shape is not, and the gradient moves a thin veil's estimate.
    from derain_train.train_full import frame_loss
    g = torch.linspace(0.2, 1.0, 32).view(1, 1, 32, 1).expand(2, 1, 32, 32)
    t = torch.exp(-0.5 * g)  # a thin veil, T from 0.90 down to 0.61
    assert frame_loss(t, t) == 0
    assert frame_loss(t ** 1.3, t) > 1e-3
    flipped = torch.flip(t, dims=[2])  # the same values upside down
    assert frame_loss(flipped, t) < 1e-10 and torch.nn.functional.mse_loss(flipped, t) > 1e-3
    est = (t ** 0.8).clone().requires_grad_(True)
    frame_loss(est, t).backward()
    assert torch.all(est.grad > 0)  # too transparent: every pixel is pushed down


def test_the_balanced_veil_loss_is_the_plain_one_at_zero_and_leans_to_close_frames():
    # train_full.veil_loss with `balance`: 0 is the batch-mean loss exactly; above 0 the frame
    # the output is already close on (a thin veil) gets the larger share of the gradient.
    import torch.nn.functional as F
    from derain_train.losses import perceptual_fast
    from derain_train.train_full import frame_weights, veil_loss
    torch.manual_seed(3)
    gt = torch.rand(2, 3, 24, 24)
    err = torch.randn_like(gt) * torch.tensor([0.02, 0.2]).view(2, 1, 1, 1)
    trans, atm = torch.rand(2, 1, 12, 12), torch.rand(2, 3)

    def outputs():
        j = (gt + err).clone().requires_grad_(True)
        return j, {"j": j, "j1": j, "t_net": trans * 0.9, "a": atm * 0.9}
    j, o = outputs()
    w_a = ((1 - trans).mean(dim=(1, 2, 3)) / 0.1).clamp(max=1)
    plain = (F.l1_loss(o["j"], gt) + 0.5 * F.l1_loss(o["j1"], gt)
             + 0.5 * perceptual_fast(o["j"], gt)
             + 10 * (F.mse_loss(o["t_net"], trans) + (w_a * ((o["a"] - atm) ** 2).mean(1)).mean()))
    assert torch.allclose(veil_loss(o, gt, trans, atm), plain)
    w = frame_weights(o["j"], gt, 0.5)
    assert torch.allclose(w.mean(), torch.tensor(1.0)) and w[0] > 1.5 * w[1]

    def share(balance):
        j, o = outputs()
        veil_loss(o, gt, trans, atm, balance).backward()
        g = j.grad.abs().sum(dim=(1, 2, 3))
        return float(g[0] / g.sum())
    assert share(0.5) > share(0.0) + 0.05


def test_the_gate_loss_opens_the_gate_on_veiled_frames_and_shuts_it_on_clear_ones():
    # train_frames.gate_loss: the target is "mean(1 − T) above 0.03"; a gate that agrees
    # costs little, one that disagrees much, and the gradient pushes each logit its own way.
    from derain_train.train_frames import gate_loss
    trans = torch.ones(3, 1, 16, 16)
    trans[0] *= 0.85  # a thin veil
    trans[1] *= 0.99  # as good as none
    trans[2, :, :8] = 0.5  # a veil over the top half
    right = torch.tensor([[6.0], [-6.0], [6.0]])
    assert gate_loss(right, trans) < 0.01 and gate_loss(-right, trans) > 5.0
    logit = torch.zeros(3, 1, requires_grad=True)
    gate_loss(logit, trans).backward()
    assert logit.grad[0] < 0 and logit.grad[1] > 0 and logit.grad[2] < 0


def test_a_soup_interpolates_one_networks_weights_and_refuses_two_networks(tmp_path):
    from derain_train import soup as soup_mod
    a = StreakNet("fast").state_dict()
    torch.manual_seed(1)
    b = {k: v + torch.randn_like(v) if v.is_floating_point() else v.clone()
         for k, v in a.items()}
    for alpha in (0.0, 1.0):
        end = soup_mod.soup(a, b, alpha)
        assert all(torch.equal(end[k], (a if alpha == 0.0 else b)[k]) for k in a)
    mid = soup_mod.soup(a, b, 0.25)
    assert mid._metadata == a._metadata, "the state dict's module versions travel along"
    for k in a:
        assert torch.allclose(mid[k], 0.75 * a[k] + 0.25 * b[k], atol=1e-6)
    # The files on disk, through the command line; the soup loads into the network.
    pa, pb, po = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "soup.pt"
    torch.save(a, pa)
    torch.save(b, pb)
    soup_mod.main([str(pa), str(pb), "--alpha", "0.5", "--out", str(po)])
    StreakNet("fast").load_state_dict(torch.load(po, weights_only=True))
    with pytest.raises(soup_mod.SoupError):
        soup_mod.soup(a, StreakNet("quality").state_dict(), 0.5)
    with pytest.raises(soup_mod.SoupError):
        soup_mod.soup(a, b, 1.5)


def test_whole_frame_training_caches_frames_and_fits_the_veil_on_them(tmp_path):
    # train_frames: `cache` stores I_s, the clean frame, T and A per frame and a fixed
    # validation set with its harm lines; `train` runs on them within its budget and leaves
    # weights that export_full loads; `run` pads a frame for the working factor and crops back.
    from derain_train import train_frames
    from derain_train.export_full import load_veil_refine
    _tiny_bank(tmp_path / "bank")
    _tiny_clean(tmp_path / "clean")
    streak = tmp_path / "streak.pt"
    torch.save(StreakNet("fast").state_dict(), streak)
    init = tmp_path / "init.pt"
    torch.save(FullModelV2("fast", apool=True, tglobal=True).state_dict(), init)
    cache = tmp_path / "cache"
    train_frames.main(["cache", "--banks", str(tmp_path / "bank"), "--clean",
                       str(tmp_path / "clean"), "--size", "fast", "--streak", str(streak),
                       "--out", str(cache), "--count", "70", "--frame", "48",
                       "--val-per-family", "2", "--threads", "1"])
    shards = sorted(cache.glob("shard*.pt"))
    assert len(shards) == 2  # 70 frames in shards of 64
    s = torch.load(shards[0], weights_only=False)
    assert s["i_s"].shape == (64, 3, 48, 48) and s["i_s"].dtype == torch.float16
    assert s["gt"].dtype == torch.uint8 and s["trans"].shape == (64, 1, 48, 48)
    assert s["atm"].shape == (64, 3) and len(s["family"]) == 64
    assert float(s["trans"].float().amin()) > 0 and float(s["trans"].float().amax()) <= 1
    val = torch.load(cache / "val.pt", weights_only=False)
    assert set(val) == {"dense", "veil-free", "clear"}
    assert torch.all(val["veil-free"]["trans"] == 1) and torch.all(val["clear"]["trans"] == 1)
    run = tmp_path / "run"
    train_frames.main(["train", "--cache", str(cache), "--size", "fast", "--init-veil",
                       str(init), "--out", str(run), "--minutes", "0.05", "--every-min",
                       "0.02", "--batch", "2", "--threads", "1", "--extra", str(cache),
                       "--extra-share", "0.5"])
    import json
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and log[-1]["step"] > 0
    assert set(log[-1]["harm"]) == {"veil-free", "clear"} and "dense" in log[-1]["val"]
    veil, _ = load_veil_refine(run / "weights.pt")
    assert veil.apool is not None and veil.tglobal is not None
    m = FullModelV2("fast")
    o = train_frames.run(m, torch.rand(1, 3, 50, 58), 3)
    assert o["j"].shape == (1, 3, 50, 58) and o["t_net"].shape == (1, 1, 50, 58)
    # `live` (the GPU recipe's veil half) composes the frames at every step instead: its
    # validation set is the cache's, frame for frame, and it trains and resumes the same way.
    live = tmp_path / "live"
    args = ["live", "--banks", str(tmp_path / "bank"), "--clean", str(tmp_path / "clean"),
            "--size", "fast", "--streak", str(streak), "--frame", "48", "--val-per-family", "2",
            "--device", "cpu", "--init-veil", str(init), "--out", str(live), "--steps", "3",
            "--every-min", "0.02", "--batch", "2", "--threads", "1"]
    train_frames.main(args)
    live_log = [json.loads(x) for x in (live / "log.jsonl").read_text().splitlines()]
    assert live_log[0] == log[0], "the same validation frames and starting pair"
    assert live_log[-1]["step"] == 3
    train_frames.main(args)  # a finished run resumes and stops
    assert torch.load(live / "ckpt.pt", weights_only=False)["step"] == 3
    veil, _ = load_veil_refine(live / "weights.pt")
    assert veil.apool is not None


def test_distillation_holds_out_the_looked_at_photos_and_crops_pairs_in_register(tmp_path):
    from PIL import Image

    from derain_train import distill, train_streak
    names = ["1.jpg", "2.jpg", "3.png", "10.jpg", "11.jpg", "57.jpg", "cover.jpg"]
    train, held = distill.split([tmp_path / n for n in names])
    assert [p.name for p in train] == ["11.jpg", "2.jpg", "3.png"]
    assert {p.name for p in held} == {"1.jpg", "10.jpg", "57.jpg", "cover.jpg"}
    # Photos made here; the teacher a random `fast` network (any net does for the plumbing).
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for n in ("2.png", "3.png", "5.png"):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photos / n)
    torch.manual_seed(0)
    torch.save(StreakNet("fast").state_dict(), tmp_path / "teacher.pt")
    distill.main(["teach", "--teacher", str(tmp_path / "teacher.pt"), "--teacher-size", "fast",
                  "--photos", str(photos), "--out", str(tmp_path / "teach.pt"), "--threads", "1"])
    recs = torch.load(tmp_path / "teach.pt", weights_only=False)
    assert recs["names"] == ["2.png", "3.png"], "photo 5 is held out"
    # The pairs are cropped at the same place: replace the targets by a known function of the
    # inputs and find it again in every crop, flipped or not.
    pairs = distill.TeacherPairs(tmp_path / "teach.pt")
    pairs.targets = [255 - t for t in pairs.inputs]
    x, y = pairs.batch(6, 24, np.random.default_rng(1))
    assert x.shape == y.shape == (6, 3, 24, 24)
    assert torch.allclose(x + y, torch.ones_like(x), atol=1e-6)
    # A photo smaller than the crop is resized, still in register.
    x, y = pairs.batch(2, 64, np.random.default_rng(2))
    assert x.shape == (2, 3, 64, 64) and torch.allclose(x + y, torch.ones_like(x), atol=1e-5)
    # train_streak mixes them in.
    _tiny_bank(tmp_path / "bank")
    _tiny_clean(tmp_path / "clean")
    train_streak.main(["--banks", str(tmp_path / "bank"), "--clean", str(tmp_path / "clean"),
                       "--size", "fast", "--steps", "3", "--batch", "4", "--crop", "32",
                       "--threads", "1", "--val-per-family", "1", "--val-crop", "32",
                       "--distill", str(tmp_path / "teach.pt"), "--distill-share", "1.0",
                       "--out", str(tmp_path / "run")])
    assert torch.load(tmp_path / "run" / "ckpt.pt")["step"] == 3
