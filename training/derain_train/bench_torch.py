"""The floor the CUDA streak network (kernels/nets.cu) is measured against (issue 18): the same
network in PyTorch, fp16 and bf16 (weights and activations in that type, channels_last) and
fp32, captured in a CUDA graph and replayed, at batch 1, 4 and 16, on frames of 1920×1088 (1080p
padded to the network's multiple of 16). One JSON line per (size, dtype, batch): ms per frame,
frames/s and TMAC/s (the network's multiply-accumulates per pixel × pixels / time).

    cd training && python3 -m derain_train.bench_torch            # on the GPU machine
    python3 -m derain_train.bench_torch --device cpu --height 64 --width 96 --batches 1 --reps 2

On the CPU (a check of the script) there is no graph and only fp32 runs. `derain bench
--backend cuda` prints the device kernels' "streak network" rows at the same size to compare.
"""

import argparse
import json
import os
import time

import torch

from .streak import StreakNet, macs_per_pixel

HERE = os.path.join(os.path.dirname(__file__), "..", "weights")


def load(size, device, dtype):
    net = StreakNet(size)
    path = os.path.join(HERE, f"streak_{size}.pt")
    if os.path.exists(path):
        st = torch.load(path, map_location="cpu")
        net.load_state_dict(st.get("model", st))
    net = net.eval().to(device=device, dtype=dtype)
    return net.to(memory_format=torch.channels_last)


@torch.no_grad()
def time_graph(net, x, reps):
    """Median ms of one replay of the network on `x`, captured in a CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # warm-up outside the graph (cuDNN picks its algorithms)
            net(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        net(x)
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


@torch.no_grad()
def time_eager(net, x, reps):
    net(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        net(x)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["fast", "quality"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16])
    ap.add_argument("--height", type=int, default=1088)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        print(json.dumps({"device": torch.cuda.get_device_name(dev), "torch": torch.__version__}),
              flush=True)
    dtypes = [torch.float16, torch.bfloat16, torch.float32] if cuda else [torch.float32]
    for size in args.sizes:
        macs = macs_per_pixel(size) * args.height * args.width
        for dtype in dtypes:
            net = load(size, dev, dtype)
            for b in args.batches:
                x = torch.rand(b, 3, args.height, args.width, device=dev, dtype=dtype)
                x = x.contiguous(memory_format=torch.channels_last)
                try:
                    ms = (time_graph if cuda else time_eager)(net, x, args.reps)
                except torch.cuda.OutOfMemoryError:
                    print(json.dumps({"size": size, "dtype": str(dtype), "batch": b,
                                      "error": "out of memory"}), flush=True)
                    continue
                per = ms / b
                print(json.dumps({"size": size, "dtype": str(dtype).replace("torch.", ""),
                                  "batch": b, "graph": cuda, "ms_per_frame": round(per, 4),
                                  "fps": round(1e3 / per, 1),
                                  "tmac_per_s": float(f"{macs / (per * 1e9):.3g}"),
                                  "frame": f"{args.width}x{args.height}"}), flush=True)
            del net
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
