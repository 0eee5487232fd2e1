"""Interpolate two weights files of one network (a "weight soup"):

    python -m derain_train.soup BASE.pt TUNED.pt --alpha 0.5 --out SOUP.pt

writes (1 − α)·BASE + α·TUNED, tensor by tensor. Meant for a fine-tuned file and the file it
started from (same architecture, one training history): the fine-tune's gain on what it was
tuned for and its losses elsewhere both shrink towards the base as α falls, and on such pairs
the loss along the line is usually lower than either end's would suggest (Wortsman et al.,
"Robust fine-tuning of zero-shot models", CVPR 2022; "Model soups", ICML 2022). A soup is a
candidate like any other: `select` scores it and the model card's rule decides.

Both files must hold the same tensors (names, shapes, dtypes); integer tensors (counters)
must be equal, as they cannot be interpolated.
"""

import argparse

import torch


class SoupError(ValueError):
    """The two files are not one network's weights."""


def soup(base, tuned, alpha):
    """(1 − alpha)·base + alpha·tuned for two state dicts of one network."""
    if not 0.0 <= alpha <= 1.0:
        raise SoupError(f"alpha {alpha} is outside [0, 1]")
    if base.keys() != tuned.keys():
        only = sorted(set(base) ^ set(tuned))
        raise SoupError(f"the files hold different tensors: {only[:5]}")
    out = {}
    for name, a in base.items():
        b = tuned[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise SoupError(f"{name}: {tuple(a.shape)} {a.dtype} against "
                            f"{tuple(b.shape)} {b.dtype}")
        if a.is_floating_point():
            out[name] = torch.lerp(a, b, alpha)
        elif torch.equal(a, b):
            out[name] = a.clone()
        else:
            raise SoupError(f"{name}: integer tensors differ and cannot be interpolated")
    out = type(base)(out)
    meta = getattr(base, "_metadata", None)  # a state dict's per-module versions
    if meta is not None:
        out._metadata = meta
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the weights the fine-tune started from")
    ap.add_argument("tuned", help="the fine-tuned weights")
    ap.add_argument("--alpha", type=float, required=True, help="share of the tuned file, [0, 1]")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    base = torch.load(args.base, map_location="cpu", weights_only=True)
    tuned = torch.load(args.tuned, map_location="cpu", weights_only=True)
    torch.save(soup(base, tuned, args.alpha), args.out)
    print(f"{args.out}: {1 - args.alpha:.2f}·{args.base} + {args.alpha:.2f}·{args.tuned}")


if __name__ == "__main__":
    main()
