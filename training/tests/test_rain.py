"""The training-time composition (rain.py) against the Rust renderer: renders of every family
with their rain layers (fixtures/rain, written by make_rain_fixtures.sh with `derain synth
--save-rain`) must be reproduced by blending the same layers with the PyTorch formulas; and
the parts rain.py ports (proxy depth, Gaussian blur, JPEG simulation, the composer) behave as
documented."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from derain_train import rain

FX = Path(__file__).parent / "fixtures" / "rain"
FAMILIES = ["reference", "dense", "screen", "layered", "light", "grainy"]


def load_rgb(p):
    return torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0) \
        .permute(2, 0, 1)[None]


def load_grey(p, scale=1.0, bits=8):
    a = np.asarray(Image.open(p), dtype=np.float32)
    return torch.from_numpy(a / (65535.0 if bits == 16 else 255.0) * scale)[None, None]


def samples(family):
    root = FX / family
    for line in (root / "manifest.jsonl").read_text().splitlines():
        yield root, json.loads(line)


@pytest.mark.parametrize("family", FAMILIES)
def test_torch_composition_reproduces_the_rust_renders(family):
    n = 0
    for root, rec in samples(family):
        stem, p = rec["name"], rec["params"]
        j = load_rgb(root / "gt" / f"{stem}.png")
        want = load_rgb(root / "in" / f"{stem}.png")
        t = load_grey(root / "trans" / f"{stem}.png")
        a = load_rgb(root / "atm" / f"{stem}.png")[0, :, 0, 0]
        r = load_grey(root / "rain" / f"{stem}.png", rec["rain_scale"], bits=16)
        on = rain.gaussian_blur(j, p["background_blur_px"]) if p["background_blur_px"] > 0 else j
        k = rain.blend(on, r, [p["blend"]])
        got = (t * k + (1 - t) * a.view(1, 3, 1, 1)).clamp(0, 1)
        # Rust recomposes from S rounded to 1/255 and rounds I; here T, A, J are the saved 8-bit
        # values and R is 16-bit: one grey level apart at most (two where a pre-blurred
        # background meets a bright streak and the rounding of S is clipped).
        err = (got - want).abs().max().item() * 255
        assert err <= 2.0, f"{family} {stem}: {err:.2f} levels"
        n += 1
    assert n == 2


def test_the_reference_family_depth_is_the_rust_proxy_depth():
    # The reference family uses the default prior (no wobble) and a σ = 5 blur: the PyTorch port
    # of proxy_depth must give the saved depth within a level or two (8-bit file).
    for root, rec in samples("reference"):
        stem, p = rec["name"], rec["params"]
        j = load_rgb(root / "gt" / f"{stem}.png")
        d = p["depth"]
        prior = {k: torch.tensor([float(d[k])]) for k in ("horizon", "offset", "gamma", "tilt", "wobble")}
        prior["grid"] = torch.zeros(1, 5, 5)
        got = rain.gaussian_blur(rain.proxy_depth(j, prior), d["blur_px"])
        want = load_grey(root / "depth" / f"{stem}.png")
        err = (got - want).abs().max().item() * 255
        assert err <= 1.5, f"{stem}: depth off by {err:.2f} levels"


def test_gaussian_blur_preserves_constants_and_mass():
    x = torch.full((2, 3, 20, 30), 0.4)
    assert torch.allclose(rain.gaussian_blur(x, torch.tensor([1.0, 5.0])), x, atol=1e-6)
    d = torch.zeros(1, 1, 31, 31)
    d[0, 0, 15, 15] = 1
    assert abs(rain.gaussian_blur(d, 2.0).sum().item() - 1) < 1e-5


def test_jpeg_simulation_loses_what_a_real_jpeg_encoder_loses():
    import io
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g) * 0.2 + torch.linspace(0, 0.7, 64).view(1, 1, 1, 64)
    x = (x * 255).round() / 255
    for q in (30, 60, 95):
        sim = ((rain.jpeg_sim(x, [q]) - x) ** 2).mean().item()
        buf = io.BytesIO()
        Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
            buf, "JPEG", quality=q)
        real = ((load_rgb(buf) - x) ** 2).mean().item()
        assert abs(sim - real) < 0.1 * real, f"quality {q}: simulated MSE {sim}, PIL {real}"


def tiny_clean_and_bank(g):
    """Three random clean images and a 4-layer dense bank of sparse dots, drawn from `g`."""
    clean = rain.CleanImages.__new__(rain.CleanImages)
    clean.images = [(torch.rand(3, 80, 90, generator=g) * 255).to(torch.uint8) for _ in range(3)]
    bank = rain.RainBank.__new__(rain.RainBank)
    bank.family, bank.blend = "dense", "add_clip"
    bank.layers = (torch.rand(4, 64, 64, generator=g) > 0.95).to(torch.float16)
    bank.scales = torch.full((4,), 0.5)
    bank.meta = [{"beta": 0.0}] * 4
    return clean, bank


def test_composer_batches_have_the_model_s_targets():
    # A tiny bank and clean set made here: V = T·J + (1 − T)·A must hold before camera
    # effects, and rain only adds light before them.
    clean, bank = tiny_clean_and_bank(torch.Generator().manual_seed(1))
    comp = rain.Composer(clean, [bank])
    rng = np.random.default_rng(3)
    b = comp.batch(4, 32, rng, camera_p=0.0)
    a = b["atm"][:, :, None, None]
    v = b["trans"] * b["gt"] + (1 - b["trans"]) * a
    assert torch.allclose(v, b["veiled"], atol=1e-6)
    assert (b["in"] >= b["veiled"] - 1e-6).all()
    assert b["in"].shape == (4, 3, 32, 32)


def test_scene_bars_are_opaque_scene_content_in_every_target():
    # Bars are painted into the clean image, so the composer's targets keep them and rain is
    # still only added on top; the same seed paints the same bars; p = 0 paints nothing.
    g = torch.Generator().manual_seed(2)
    j = torch.rand(6, 3, 96, 96, generator=g) * 0.5
    a = rain.scene_bars(j, np.random.default_rng(5), 1.0)
    b = rain.scene_bars(j, np.random.default_rng(5), 1.0)
    assert torch.equal(a, b)
    assert torch.equal(rain.scene_bars(j, np.random.default_rng(5), 0.0), j)
    # Over a black and a mid-grey image the same draws give the opacity of every pixel:
    # each sample has a bar covering part of the crop only, most of them opaque (≥ 0.8) at
    # their core (the softened ones are less so).
    zero, grey = torch.zeros(6, 3, 96, 96), torch.full((6, 3, 96, 96), 0.5)
    z = rain.scene_bars(zero, np.random.default_rng(9), 1.0)
    m = 1 - (rain.scene_bars(grey, np.random.default_rng(9), 1.0) - z) / 0.5
    assert m.min() > -1e-5 and m.max() < 1 + 1e-5
    for i in range(6):
        assert m[i].max() > 0.2
        assert 0 < (m[i, 0] > 0.1).float().mean() < 0.9
    assert sum(bool(m[i].max() >= 0.8 - 1e-5) for i in range(6)) >= 3
    clean, bank = tiny_clean_and_bank(g)
    out = rain.Composer(clean, [bank], bars=1.0).batch(4, 48, np.random.default_rng(7), camera_p=0.0)
    plain = rain.Composer(clean, [bank]).batch(4, 48, np.random.default_rng(7), camera_p=0.0)
    assert not torch.equal(out["gt"], plain["gt"])
    assert (out["in"] >= out["veiled"] - 1e-6).all()


def dominant_tilt_deg(x):
    """Angle in degrees between the dominant streak direction of a [H, W] layer and vertical,
    from the gradient structure tensor (0 for vertical lines; the sign says which way)."""
    gx = x[:, 1:] - x[:, :-1]
    gy = x[1:, :] - x[:-1, :]
    gx, gy = gx[:-1, :], gy[:, :-1]
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    return math.degrees(0.5 * math.atan2(2 * float(jxy), float(jxx - jyy)))


def line_bank(size):
    """A one-layer bank of vertical lines 9 px apart, `size`² (no files)."""
    bank = rain.RainBank.__new__(rain.RainBank)
    bank.family, bank.blend = "dense", "add_clip"
    layer = torch.zeros(1, size, size)
    layer[0, :, ::9] = 1.0
    bank.layers = layer.to(torch.float16)
    bank.scales = torch.ones(1)
    bank.meta = [{}]
    return bank


def test_turned_rain_layers_are_slanted_by_20_to_65_degrees():
    # A bank of vertical lines: crops keep them vertical; with rotate=1 every crop turns them
    # by 20–65° either way (wind), and the rain stays non-negative.
    bank = line_bank(128)
    rng = np.random.default_rng(5)
    out = torch.zeros(1, 1, 64, 64)
    signs = set()
    for _ in range(12):
        bank.crops([0], 64, out, rng)
        assert abs(dominant_tilt_deg(out[0, 0])) < 2.0
        bank.crops([0], 64, out, rng, rotate=1.0)
        tilt = dominant_tilt_deg(out[0, 0])
        assert 17.0 <= abs(tilt) <= 68.0, tilt
        assert float(out.min()) >= 0.0 and float(out.max()) > 0.3
        signs.add(tilt > 0)
    assert signs == {True, False}


def test_thin_rain_layers_are_scaled_down_by_0_4_to_0_67():
    # A bank of vertical lines 9 px apart: a crop at scale z puts them 9·z px apart, so the
    # line count across a 64-px crop tells the scale. Plain crops: ×0.67–1.5; with thin=1
    # ×0.4–0.67 (the bank's size permitting: a 160² bank bounds a 64² crop at ×0.4).
    bank = line_bank(160)
    rng = np.random.default_rng(7)
    out = torch.zeros(1, 1, 64, 64)

    def scale():
        # Mean spacing of the lines: the peaks of the column profile, first to last.
        prof = out[0, 0].mean(0)
        peaks = [x for x in range(1, 63) if prof[x] >= prof[x - 1] and prof[x] > prof[x + 1]
                 and prof[x] > 0.5 * float(prof.max())]
        return (peaks[-1] - peaks[0]) / (len(peaks) - 1) / 9

    for _ in range(10):
        bank.crops([0], 64, out, rng)
        assert 0.6 <= scale() <= 1.6, scale()
        bank.crops([0], 64, out, rng, thin=1.0)
        assert 0.36 <= scale() <= 0.72, scale()
        assert float(out.min()) >= 0.0


def grainy_stats(r):
    """Checks that a rain layer `r` [H, W] is grainy rain, short, soft and uneven drops over
    much of the frame, and returns (half-length along the drops, half-width across, mean):
    light only (≥ 0; a Rust layer's brightest drops may pass 1 before the blend clips them,
    so it is measured clipped at 1); the autocorrelation along the drops' direction (the
    slowest decay within ±45° of vertical) falls to half within 2–20 px (bank streaks: 21–60
    px and more), across them within a few pixels and no later than along; the lit pixels'
    values spread; light rain over the crop, not a white sheet."""
    h, w = r.shape
    assert float(r.min()) >= 0.0
    r = r.clamp(max=1.0)
    assert float((r > 0.01).float().mean()) > 0.2, "covers much of the crop"
    x = r - r.mean()
    f = torch.fft.rfft2(x)
    ac = torch.fft.irfft2(f * f.conj(), s=x.shape)
    ac = ac / ac[0, 0]

    def profile(th):
        return [float(ac[int(round(t * math.cos(th))) % h, int(round(t * math.sin(th))) % w])
                for t in range(0, 40)]

    best = None
    for deg in range(-45, 46, 3):
        half = next((t for t, v in enumerate(profile(math.radians(deg))) if v < 0.5), 40)
        if best is None or half > best[0]:
            best = (half, deg)
    half, deg = best
    assert 2 <= half <= 20, (half, deg)
    across = next(t for t, v in enumerate(profile(math.radians(deg + 90))) if v < 0.5)
    assert across <= 4 and across <= half, (across, half)
    v = r[r > float(r.quantile(0.5))]
    assert float(v.std() / v.mean()) > 0.2
    assert 0.005 < float(r.mean()) < 0.3
    return half, across, float(r.mean())


def test_grainy_rain_is_short_soft_uneven_and_deterministic():
    # rain.grainy_rain: the same draws give the same layer, and every layer is grainy rain.
    size = 128
    a = rain.grainy_rain(size, np.random.default_rng(3))
    b = rain.grainy_rain(size, np.random.default_rng(3))
    c = rain.grainy_rain(size, np.random.default_rng(4))
    assert a.shape == (1, size, size) and torch.equal(a, b) and not torch.equal(a, c)
    for seed in range(6):
        grainy_stats(rain.grainy_rain(size, np.random.default_rng(seed))[0])


def test_grainy_rain_matches_the_rust_grainy_family():
    # The torch port (drawn on the training device) against the Rust renderer's family (f)
    # (fixtures/rain/grainy-bank: `derain synth-bank --style grainy`, 128² layers): both
    # grainy by the same checks, and alike in drop length, width and brightness (within a
    # factor of two).
    bank = FX / "grainy-bank"
    recs = [json.loads(l) for l in (bank / "manifest.jsonl").read_text().splitlines() if l]
    assert len(recs) >= 6 and all(r["params"]["style"] == "grainy" for r in recs)
    rust = [grainy_stats(load_grey(bank / "rain" / f"{r['name']}.png", r["scale"],
                                   bits=16)[0, 0]) for r in recs]
    torch_ = [grainy_stats(rain.grainy_rain(128, np.random.default_rng(seed))[0])
              for seed in range(32)]
    for k, name in enumerate(["half-length", "half-width", "mean"]):
        # Medians of the drop sizes; the mean brightness averaged (1–3 layers of 0.01–0.08
        # each; the mean of eight Rust layers ranged 0.07–0.13 over 100, their median more).
        stat = np.mean if name == "mean" else np.median
        a = float(stat([s[k] for s in rust]))
        b = float(stat([s[k] for s in torch_]))
        print(f"{name}: Rust {a:.4g}, torch {b:.4g}")
        assert 0.5 <= a / b <= 2.0, f"{name}: Rust {a} against torch {b}"


def test_grainy_share_of_the_composer_replaces_the_bank_rain():
    # grainy=1: every crop's rain is grainy_rain's (short drops), so the inputs differ from
    # the same draws with grainy=0 and still only add light where nothing clips.
    bank = line_bank(256)
    out0, out1 = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    bank.crops([0], 64, out0, np.random.default_rng(1))
    bank.crops([0], 64, out1, np.random.default_rng(1), grainy=1.0)
    assert not torch.equal(out0, out1)
    assert float(out1.min()) >= 0.0 and float(out1.max()) <= 1.0 and float(out1.max()) > 0.0


def test_scene_grain_is_signed_coloured_texture_at_every_angle():
    # rain.scene_grain, the counterweight to grainy rain: with p = 1 every crop gets texture
    # that darkens as well as brightens, differs per channel (rain is achromatic) and is
    # spread over many angles (rain shares one); p = 0 leaves the crops as they were.
    j = torch.full((2, 3, 96, 96), 0.5)
    assert torch.equal(rain.scene_grain(j, np.random.default_rng(0), 0.0), j)
    g = rain.scene_grain(j, np.random.default_rng(0), 1.0)
    assert torch.equal(j, torch.full((2, 3, 96, 96), 0.5)), "a new tensor"
    for i in range(2):
        d = g[i] - j[i]
        assert float(d.min()) < -0.005 and float(d.max()) > 0.005
        assert max(float((d[0] - d[1]).abs().max()), float((d[1] - d[2]).abs().max())) > 0.002
        # Direction spread: the texture's energy in the orientation bands of its spectrum; one
        # shared angle puts more of it in one band (grainy_rain: 0.36–0.71 of it; this
        # texture 0.2–0.32).
        y = d.mean(0)
        f = torch.fft.fftshift(torch.fft.fft2(y - y.mean()).abs() ** 2)
        yy, xx = torch.meshgrid(torch.arange(96) - 48, torch.arange(96) - 48, indexing="ij")
        ang = (torch.atan2(yy.float(), xx.float()) % math.pi) / math.pi * 6
        bands = torch.stack([f[(ang.long() == b) & ((yy ** 2 + xx ** 2) > 4)].sum()
                             for b in range(6)])
        assert float(bands.max() / bands.sum()) < 0.4, bands.tolist()
    # Through the composer: the texture is scene content, in the input's background and in
    # every target; rain is still only added on top.
    clean, bank = tiny_clean_and_bank(torch.Generator().manual_seed(4))
    out = rain.Composer(clean, [bank], grain=1.0).batch(4, 48, np.random.default_rng(7),
                                                         camera_p=0.0)
    plain = rain.Composer(clean, [bank]).batch(4, 48, np.random.default_rng(7), camera_p=0.0)
    assert not torch.equal(out["gt"], plain["gt"])
    v = out["trans"] * out["gt"] + (1 - out["trans"]) * out["atm"][:, :, None, None]
    assert torch.allclose(out["veiled"], v, atol=1e-6)
    assert (out["in"] >= out["veiled"] - 1e-6).all()


def test_clear_share_of_the_composer_makes_the_input_its_target():
    # clear=1: no rain and no veil, so before the camera effects the input is the clean crop
    # and so is every target; clear=0 draws exactly as before (the same seed, the same batch
    # as a composer without the option), and the rainy batch differs from its clean crops.
    clean, bank = tiny_clean_and_bank(torch.Generator().manual_seed(5))
    out = rain.Composer(clean, [bank], clear=1.0).batch(4, 48, np.random.default_rng(7),
                                                         camera_p=0.0)
    assert torch.allclose(out["in"], out["gt"], atol=1e-6)
    assert torch.allclose(out["veiled"], out["gt"], atol=1e-6)
    assert bool((out["trans"] == 1).all())
    off = rain.Composer(clean, [bank], clear=0.0).batch(4, 48, np.random.default_rng(7),
                                                        camera_p=0.0)
    plain = rain.Composer(clean, [bank]).batch(4, 48, np.random.default_rng(7), camera_p=0.0)
    assert all(torch.equal(off[k], plain[k]) for k in ("in", "gt", "veiled", "trans"))
    assert not torch.allclose(plain["in"], plain["veiled"], atol=1e-3)
