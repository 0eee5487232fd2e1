"""Checks of the training package: the bank against a naive definition, shapes and ranges of
the networks, the ONNX export round trip, and that a few optimisation steps reduce the loss."""

import numpy as np
import pytest
import torch

from derain_train.guided_filter import BANK_EPS, BANK_RADII, box_mean, guided_bank, residue
from derain_train.losses import perceptual, ssim
from derain_train.model import T0, FullModel, Stage1, Stage2, work_factor


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


def test_networks_shapes_and_ranges():
    torch.manual_seed(0)
    s1, s2 = Stage1(), Stage2()
    for p in s1.parameters():  # random weights, not the zero-initialised heads
        torch.nn.init.normal_(p, std=0.3)
    x = torch.rand(2, 33, 12, 20)
    t, ab, a = s1(x, x)
    assert t.shape == (2, 1, 12, 20) and ab.shape == (2, 2, 12, 20) and a.shape == (2, 3)
    assert t.min() >= T0 - 1e-6 and t.max() <= 1 + 1e-6
    assert a.min() >= 0 and a.max() <= 1
    assert s2(torch.rand(1, 4, 16, 8)).shape == (1, 3, 16, 8)


def test_veil_gate():
    torch.manual_seed(1)
    s1 = Stage1()
    x = torch.rand(1, 33, 16, 24)
    with torch.no_grad():
        torch.nn.init.normal_(s1.tnet.out.weight, std=0.5)
    # A closed gate (g -> 0) means no veil: T = 1 whatever the TNet says; an open one
    # (g -> 1) leaves the TNet's T as it is.
    with torch.no_grad():
        s1.anet.gate.bias.fill_(-40.0)
    t, _, _ = s1(x, x)
    assert torch.allclose(t, torch.ones_like(t))
    with torch.no_grad():
        s1.anet.gate.bias.fill_(40.0)
    t, _, _ = s1(x, x)
    t_local = T0 + (1 - T0) * torch.sigmoid(s1.tnet(x))
    assert torch.allclose(t, t_local) and t.min() < 0.99


def test_full_model_output_is_an_image():
    m = FullModel()
    o = m(torch.rand(1, 3, 32, 48), 2)
    assert o["j"].shape == (1, 3, 32, 48)
    assert torch.isfinite(o["j"]).all() and o["j"].min() >= 0 and o["j"].max() <= 1


def test_losses_are_zero_on_equal_images_and_positive_otherwise():
    x = torch.rand(1, 3, 32, 32)
    assert float(perceptual(x, x)) < 1e-6
    assert float(perceptual(x, x.flip(3))) > 0.1
    assert abs(float(ssim(x[:, :1], x[:, :1])) - 1) < 1e-6


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    m = FullModel()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    clean = torch.rand(2, 3, 32, 32) * 0.5
    rainy = 0.6 * clean + 0.4 * 0.8  # a uniform veil, T = 0.6, A = 0.8
    losses = []
    for _ in range(30):
        o = m(rainy, 2)
        loss = (o["j"] - clean).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


def test_onnx_export_round_trip(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from derain_train.export import export_onnx

    torch.manual_seed(0)
    s1 = Stage1()
    for p in s1.parameters():
        torch.nn.init.normal_(p, std=0.2)
    dyn = {2: "h", 3: "w"}
    x = torch.rand(1, 33, 8, 12)
    export_onnx(s1, (x, x), tmp_path / "s1.onnx", ["x_lf", "x_hf"],
                ["transmission", "streak_coefs", "atmosphere"],
                {"x_lf": dyn, "x_hf": dyn, "transmission": dyn, "streak_coefs": dyn})
    sess = ort.InferenceSession(str(tmp_path / "s1.onnx"))
    y = torch.rand(1, 33, 16, 20)
    got = sess.run(None, {"x_lf": y.numpy(), "x_hf": y.numpy()})
    want = [v.detach().numpy() for v in s1(y, y)]
    for g, w in zip(got, want):
        assert np.abs(g - w).max() < 1e-4  # float32 summation order differs


def _fake_renders(root, n=3, h=72, w=96):
    """A tiny `derain synth`-shaped folder: in/ gt/ streak/ trans/ atm/ depth/."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for d in ("in", "gt", "streak", "trans", "atm", "depth"):
        (root / d).mkdir(parents=True)
    for k in range(n):
        stem = f"img{k}_00"
        gt = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
        t = np.full((h, w), 140 + 15 * k, np.uint8)
        rainy = (gt * (t[..., None] / 255.0) + 200 * (1 - t[..., None] / 255.0)).astype(np.uint8)
        Image.fromarray(rainy).save(root / "in" / f"{stem}.png")
        Image.fromarray(gt).save(root / "gt" / f"{stem}.png")
        Image.fromarray(np.zeros((h, w), np.uint8)).save(root / "streak" / f"{stem}.png")
        Image.fromarray(t).save(root / "trans" / f"{stem}.png")
        Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(root / "atm" / f"{stem}.png")
        Image.fromarray(np.full((h, w), 100, np.uint8)).save(root / "depth" / f"{stem}.png")


def test_a_time_budget_ends_the_run_with_a_checkpoint(tmp_path):
    import time
    from derain_train import train
    _fake_renders(tmp_path / "data")
    t = time.time()
    train.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                "--steps", "1000000", "--minutes", "0.02", "--batch", "1", "--crop", "48",
                "--val-images", "1", "--every", "1000000", "--threads", "1"])
    assert time.time() - t < 60
    st = torch.load(tmp_path / "run" / "ckpt.pt")
    assert 0 < st["step"] < 1000000
    assert (tmp_path / "run" / "weights.pt").exists()


def test_fitting_only_the_a_head_leaves_the_gate_unchanged(tmp_path):
    from derain_train import fit_atm
    _fake_renders(tmp_path / "data", n=6)
    m = FullModel()
    torch.save(m.state_dict(), tmp_path / "init.pt")
    fit_atm.main(["--data", str(tmp_path / "data"), "--init", str(tmp_path / "init.pt"),
                  "--out", str(tmp_path / "fit"), "--steps", "3", "--batch", "1", "--every", "3",
                  "--val-images", "1", "--train", "a-head", "--lr", "1e-2", "--threads", "1"])
    after = torch.load(tmp_path / "fit" / "weights.pt")
    before = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("stage1.anet.head.") for k in changed), changed


def test_the_physics_gate_scales_the_veil():
    torch.manual_seed(2)
    m = FullModel()
    with torch.no_grad():
        torch.nn.init.normal_(m.stage1.tnet.out.weight, std=0.5)
    img = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        plain, one, off = m(img, 2), m(img, 2, k=1.0), m(img, 2, k=torch.tensor([0.0, 0.0]))
    assert torch.equal(plain["t"], one["t"]) and plain["t"].min() < 0.99
    assert torch.equal(off["t"], torch.ones_like(off["t"]))  # k = 0: no veil at all


def test_fit_atm_with_the_physics_gate(tmp_path):
    import json
    import pytest
    from derain_train import fit_atm
    _fake_renders(tmp_path / "data", n=6)
    m = FullModel()
    torch.save(m.state_dict(), tmp_path / "init.pt")
    args = ["--data", str(tmp_path / "data"), "--init", str(tmp_path / "init.pt"),
            "--out", str(tmp_path / "fit"), "--steps", "3", "--batch", "1", "--every", "3",
            "--val-images", "1", "--train", "heads", "--lr", "1e-2", "--threads", "1",
            "--physics-gate"]
    with pytest.raises(FileNotFoundError, match="veil_gate"):
        fit_atm.main(args)
    # k = 0 on every frame: the learned gate has no effect on T, so it gets no gradient and
    # stays exactly as it was, while A's head is still fitted.
    stems = [p.stem for p in (tmp_path / "data" / "in").glob("*.png")]
    (tmp_path / "data" / "veil.json").write_text(
        json.dumps({s: {"median": 0.1, "k": 0.0} for s in stems}))
    fit_atm.main(args)
    after = torch.load(tmp_path / "fit" / "weights.pt")
    before = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("stage1.anet.head.") for k in changed), changed
