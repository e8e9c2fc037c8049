#!/usr/bin/python3
"""PyTorch peer of nanonas's training engine, for the benchmarks in bench/ (issue 2).

The same model and training loop as nanonas's Evaluate(): the NanoNAS 2023 ("paper") variant
    x/255 -> BatchNorm -> Conv3x3(k)+ReLU -> c x [MaxPool2x2 -> BatchNorm -> Conv3x3(n_i)+ReLU]
    -> GlobalAvgPool -> Dropout(0.5) -> Dense(classes) -> softmax cross-entropy
with Keras' settings (BatchNorm momentum 0.99 / epsilon 1e-3, Glorot-uniform kernels, zero biases,
Adam beta1 0.9, beta2 0.999, eps 1e-7), float32 on the CPU, in NCHW or channels_last layout.

Uses Debian's python3-torch (run it with /usr/bin/python3). Sub-commands, each printing one JSON
object per line on stdout:
    throughput  training and inference images/s of one candidate on synthetic data
    accuracy    a 3-epoch Fashion-MNIST run (best/last validation accuracy per epoch)
    memory      a 3-epoch evaluation on synthetic data, reporting its own ru_maxrss
    serve       reads one JSON request per line on stdin ({"cmd": "throughput", ...} with the same
                option names as the sub-commands) and answers each with one JSON line; this keeps
                one warm interpreter for the alternating runs of bench/run.py.
"""
import argparse
import gzip
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def cell_channels(k, c):
    """n_0 = k, n_i = ceil(n_{i-1} * m_i), m_1 = 2, m_{i+1} = m_i - 2^-i (architecture.h)."""
    n = [k]
    m = 2.0
    for i in range(1, c + 1):
        n.append(int(math.ceil(n[-1] * m)))
        m -= 2.0 ** -i
    return n


def max_cells(h, w):
    c = 0
    while h > 1 and w > 1:
        h //= 2
        w //= 2
        c += 1
    return c


def parse_input(text):
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) == 2:
        parts.append(1)
    if len(parts) != 3 or min(parts) < 1 or parts[2] not in (1, 3):
        raise ValueError(f"input '{text}' is not HxWxC with C 1 or 3")
    return tuple(parts)


class NanoNasNet(nn.Module):
    """The 2023-variant NanoNAS network; forward takes float pixels in [0, 255]."""

    def __init__(self, k, c, in_channels, classes):
        super().__init__()
        ch = cell_channels(k, c)
        self.channels = ch
        self.input_bn = nn.BatchNorm2d(in_channels, eps=1e-3, momentum=0.01)
        convs = [nn.Conv2d(in_channels, ch[0], 3, padding=1)]
        convs += [nn.Conv2d(ch[i - 1], ch[i], 3, padding=1) for i in range(1, c + 1)]
        self.convs = nn.ModuleList(convs)
        self.cell_bns = nn.ModuleList(
            [nn.BatchNorm2d(ch[i - 1], eps=1e-3, momentum=0.01) for i in range(1, c + 1)])
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(ch[-1], classes)
        for m in list(self.convs) + [self.dense]:  # Keras defaults
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.input_bn(x * (1.0 / 255.0))
        x = F.relu(self.convs[0](x))
        for bn, conv in zip(self.cell_bns, self.convs[1:]):
            x = F.relu(conv(bn(F.max_pool2d(x, 2))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.dense(self.dropout(x))


class Images:
    """uint8 images held once in the layout the model wants; batch() gathers float32 batches."""

    def __init__(self, nhwc_uint8, labels, layout):
        t = torch.from_numpy(np.ascontiguousarray(nhwc_uint8))
        if layout == "nchw":
            self.data = t.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W) contiguous
            self.nhwc = False
        else:  # channels_last: keep NHWC storage, view as NCHW with channels_last strides
            self.data = t
            self.nhwc = True
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def batch(self, idx):
        x = self.data.index_select(0, idx)
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        return x.float(), self.labels.index_select(0, idx)


def make_model(k, c, shape, classes, layout, seed):
    torch.manual_seed(seed)
    model = NanoNasNet(k, c, shape[2], classes)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    return model, opt


def train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    out = model(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    opt.step()
    # Keras-like running metrics, as nanonas reports them.
    return loss.item(), int((out.argmax(1) == y).sum())


def synthetic(n, shape, classes, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n,) + tuple(shape), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n, dtype=np.int64)
    return images, labels


def cmd_throughput(o):
    """Steady-state training and inference images/s, batch o.batch, o.threads threads."""
    torch.set_num_threads(o.threads)
    shape = parse_input(o.input)
    if o.c > max_cells(shape[0], shape[1]):
        raise ValueError(f"c={o.c} beyond the cell limit of {o.input}")
    n = max(o.batch * 64, 1024)
    images, labels = synthetic(n, shape, o.classes, o.seed)
    data = Images(images, labels, o.layout)
    model, opt = make_model(o.k, o.c, shape, o.classes, o.layout, o.seed)
    gen = torch.Generator().manual_seed(o.seed)
    batches_per_epoch = n // o.batch

    def batches():
        while True:  # per-epoch shuffle, like the real training loop
            perm = torch.randperm(n, generator=gen)
            for b in range(batches_per_epoch):
                yield perm[b * o.batch:(b + 1) * o.batch]

    it = batches()
    model.train()
    warm_end = time.perf_counter() + o.warmup
    done = 0
    while time.perf_counter() < warm_end or done < 3:
        train_step(model, opt, *data.batch(next(it)))
        done += 1
    steps, t0 = [], time.perf_counter()
    while True:
        ts = time.perf_counter()
        train_step(model, opt, *data.batch(next(it)))
        te = time.perf_counter()
        steps.append(te - ts)
        elapsed = te - t0
        if elapsed >= o.seconds and len(steps) >= 5:
            break
    train_ips = len(steps) * o.batch / elapsed
    # The median step resists the stalls other processes cause on a shared machine.
    median_step_ips = o.batch / float(np.median(steps))

    model.eval()
    with torch.inference_mode():
        for _ in range(3):
            model(data.batch(next(it))[0]).argmax(1)
        steps, t0 = 0, time.perf_counter()
        while True:
            model(data.batch(next(it))[0]).argmax(1)
            steps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= o.infer_seconds and steps >= 5:
                break
    infer_ips = steps * o.batch / elapsed
    return {"framework": "pytorch", "layout": o.layout, "k": o.k, "c": o.c, "input": o.input,
            "threads": o.threads, "batch": o.batch, "channels": model.channels,
            "train_images_per_second": train_ips,
            "train_images_per_second_median_step": median_step_ips,
            "infer_images_per_second": infer_ips}


def load_idx(images_path, labels_path):
    with gzip.open(images_path, "rb") as f:
        raw = f.read()
    magic, n, h, w = np.frombuffer(raw[:16], dtype=">i4")
    if magic != 2051:
        raise ValueError(f"{images_path}: not an IDX image file (magic {magic})")
    images = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, h, w, 1).copy()  # writable
    with gzip.open(labels_path, "rb") as f:
        raw = f.read()
    magic, m = np.frombuffer(raw[:8], dtype=">i4")
    if magic != 2049 or m != n:
        raise ValueError(f"{labels_path}: not an IDX label file for {n} images")
    return images, np.frombuffer(raw[8:], dtype=np.uint8).astype(np.int64)


def read_split(path):
    """The split nanonas-bench wrote: int64 n_train, n_val, then the train and validation indices."""
    raw = np.fromfile(path, dtype="<i8")
    n_train, n_val = int(raw[0]), int(raw[1])
    if raw.size != 2 + n_train + n_val:
        raise ValueError(f"{path}: truncated split file")
    return raw[2:2 + n_train], raw[2 + n_train:]


def evaluate(model, opt, data, train_idx, val_idx, epochs, batch, seed, log=None):
    """Trains for `epochs` and scores the validation set after each (as nanonas's Evaluate)."""
    gen = torch.Generator().manual_seed(seed)
    train_idx = torch.from_numpy(np.asarray(train_idx, dtype=np.int64))
    val_idx = torch.from_numpy(np.asarray(val_idx, dtype=np.int64))
    stats = []
    t_start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen)]
        loss_sum, correct = 0.0, 0
        for b in range(0, len(perm), batch):
            x, y = data.batch(perm[b:b + batch])
            loss, corr = train_step(model, opt, x, y)
            loss_sum += loss * len(y)
            correct += corr
        train_seconds = time.perf_counter() - t0
        model.eval()
        val_correct = 0
        with torch.inference_mode():
            for b in range(0, len(val_idx), 256):
                x, y = data.batch(val_idx[b:b + 256])
                val_correct += int((model(x).argmax(1) == y).sum())
        stats.append({"epoch": epoch, "train_loss": loss_sum / len(perm),
                      "train_accuracy": correct / len(perm),
                      "validation_accuracy": val_correct / len(val_idx),
                      "train_seconds": train_seconds,
                      "seconds": time.perf_counter() - t0})
        if log:
            log(stats[-1])
    best = max(s["validation_accuracy"] for s in stats)
    return {"epochs": stats, "best_validation_accuracy": best,
            "final_validation_accuracy": stats[-1]["validation_accuracy"],
            "seconds": time.perf_counter() - t_start,
            "train_images_per_second":
                epochs * len(train_idx) / sum(s["train_seconds"] for s in stats)}


def cmd_accuracy(o):
    torch.set_num_threads(o.threads)
    images, labels = load_idx(os.path.join(o.data_dir, "train-images-idx3-ubyte.gz"),
                              os.path.join(o.data_dir, "train-labels-idx1-ubyte.gz"))
    if o.split_file:
        train_idx, val_idx = read_split(o.split_file)
    else:  # own seeded split: the last validation fraction of a permutation
        n = len(labels) if o.limit <= 0 else min(o.limit, len(labels))
        perm = np.random.default_rng(o.seed).permutation(n)
        n_val = int(n * o.validation)
        train_idx, val_idx = perm[:n - n_val], perm[n - n_val:]
    data = Images(images, labels, o.layout)
    model, opt = make_model(o.k, o.c, (28, 28, 1), 10, o.layout, o.seed)
    result = evaluate(model, opt, data, train_idx, val_idx, o.epochs, o.batch, o.seed)
    result.update({"framework": "pytorch", "layout": o.layout, "k": o.k, "c": o.c, "seed": o.seed,
                   "threads": o.threads, "train_images": int(len(train_idx)),
                   "validation_images": int(len(val_idx))})
    return result


def cmd_memory(o):
    torch.set_num_threads(o.threads)
    shape = parse_input(o.input)
    images, labels = synthetic(o.images, shape, o.classes, o.seed)
    data = Images(images, labels, o.layout)
    del images
    perm = np.random.default_rng(o.seed).permutation(o.images)
    n_val = int(o.images * o.validation)
    model, opt = make_model(o.k, o.c, shape, o.classes, o.layout, o.seed)
    result = evaluate(model, opt, data, perm[:o.images - n_val], perm[o.images - n_val:],
                      o.epochs, o.batch, o.seed)
    result.update({"framework": "pytorch", "k": o.k, "c": o.c, "input": o.input,
                   "images": o.images, "threads": o.threads,
                   "self_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    del result["epochs"]
    return result


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--k", type=int, default=4)
        s.add_argument("--c", type=int, default=2)
        s.add_argument("--threads", type=int, default=2)
        s.add_argument("--batch", type=int, default=16)
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--layout", choices=["nchw", "channels_last"], default="nchw")
        s.add_argument("--classes", type=int, default=10)

    s = sub.add_parser("throughput")
    common(s)
    s.add_argument("--input", default="50x50x3")
    s.add_argument("--seconds", type=float, default=1.0, help="timed training window")
    s.add_argument("--infer-seconds", type=float, default=0.5, help="timed inference window")
    s.add_argument("--warmup", type=float, default=0.2, help="untimed training seconds first")
    s = sub.add_parser("accuracy")
    common(s)
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--data-dir", default=FASHION_DIR)
    s.add_argument("--split-file", default="", help="split written by nanonas-bench accuracy")
    s.add_argument("--validation", type=float, default=0.3)
    s.add_argument("--limit", type=int, default=0, help="use the first N training images")
    s = sub.add_parser("memory")
    common(s)
    s.add_argument("--input", default="50x50x3")
    s.add_argument("--images", type=int, default=10000)
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--validation", type=float, default=0.3)
    sub.add_parser("serve")
    return p


COMMANDS = {"throughput": cmd_throughput, "accuracy": cmd_accuracy, "memory": cmd_memory}


def serve(p):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            argv = [req.pop("cmd")]
            for key, value in req.items():
                argv += ["--" + key.replace("_", "-"), str(value)]
            o = p.parse_args(argv)
            reply = COMMANDS[o.cmd](o)
        except (Exception, SystemExit) as e:  # keep serving; the driver reports the error
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def main():
    p = parser()
    o = p.parse_args()
    if o.cmd == "serve":
        serve(p)
        return
    print(json.dumps(COMMANDS[o.cmd](o)), flush=True)


if __name__ == "__main__":
    main()
