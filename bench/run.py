#!/usr/bin/python3
"""Runs nanonas-bench and its PyTorch peer in alternation and prints the benchmark tables.

Called by bench/run.sh (which builds nanonas-bench first); see bench/README.md. Three parts:
  throughput  training and inference images/s, (k, c) grid x {50x50x3, 28x28x1}, batch 16,
              2 threads and 1 thread; nanonas vs PyTorch NCHW and channels_last (the faster one
              is the peer); medians of --reps alternating repetitions
  accuracy    3-epoch best validation accuracy on Fashion-MNIST (28x28x1, 60k training images,
              0.3 validation split shared by both), (4,2) and (8,2), mean over seeds
  memory      OS-measured peak RSS (ru_maxrss via wait4) of a 3-epoch evaluation on 10,000
              synthetic 50x50x3 images, each in a child process
Benchmarks are not tests: figures are printed, targets are reported as met or not, and the exit
status is 0 unless the harness itself is misused.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GRID = [(1, 0), (2, 1), (4, 2), (8, 2), (8, 3), (16, 3)]
INPUTS = ["50x50x3", "28x28x1"]
LAYOUTS = ["nchw", "channels_last"]
TRAIN_TARGET = 3.0      # nanonas training throughput / PyTorch's, every candidate
ACCURACY_POINTS = 1.5   # |mean nanonas - mean PyTorch| in percentage points
MEMORY_MB = 200.0       # peak RSS of the 10,000-image 50x50x3 evaluation


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values):
    return statistics.median(values) if values else float("nan")


class TorchPeer:
    """One warm `torch_peer.py serve` process answering JSON requests."""

    def __init__(self, python):
        self.proc = subprocess.Popen([python, os.path.join(HERE, "torch_peer.py"), "serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def request(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch peer exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def run_json(cmd, timeout=900):
    """Runs a child, returns (its JSON line, its ru_maxrss in KiB as the OS measured it)."""
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cmd[0])} {cmd[1]} exited {proc.returncode}: "
                           f"{errors.strip()[-500:]}")
    return json.loads(text.strip().splitlines()[-1]), ru.ru_maxrss


def macc_of(k, c, inp, classes=10):
    """MACC of convs + dense, as architecture.h counts it (preprocessing excluded)."""
    h, w, ch = (int(x) for x in inp.split("x"))
    n = [k]
    m = 2.0
    for i in range(1, c + 1):
        n.append(-(-n[-1] * int(m * 2**i) // 2**i))  # ceil(n * m), m exact in binary
        m -= 2.0 ** -i
    total = ch * 9 * h * w * n[0]
    for i in range(1, c + 1):
        h, w = h // 2, w // 2
        total += n[i - 1] * 9 * h * w * n[i]
    return total + n[-1] * classes


def best_of(d):
    return max((v for v in d.values() if v == v), default=float("nan"))


def div(a, b):
    return a / b if a == a and b == b and b else float("nan")


def kc(k, c):
    return f"({k},{c})"


def fmt(x, digits=0):
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{digits}f}"


# ---------------------------------------------------------------------------------------------
def throughput(o, peer, results):
    reps, secs, isecs = o.reps, o.seconds, o.infer_seconds
    runs = results.setdefault("throughput_runs", [])
    errors = results.setdefault("errors", [])
    total = reps * len(INPUTS) * len(GRID) * len(o.threads)
    n = 0
    for rep in range(reps):
        for inp in INPUTS:
            for (k, c) in GRID:
                for t in o.threads:
                    n += 1
                    runners = ["nanonas", "nchw", "channels_last"] if o.bin else LAYOUTS[:]
                    shift = (rep + n) % len(runners)  # alternate who goes first
                    runners = runners[shift:] + runners[:shift]
                    line = []
                    for r in runners:
                        try:
                            if r == "nanonas":
                                res, _ = run_json([o.bin, "throughput", "--k", str(k), "--c", str(c),
                                                   "--input", inp, "--threads", str(t),
                                                   "--seconds", str(secs),
                                                   "--infer-seconds", str(isecs)], timeout=300)
                            else:
                                res = peer.request(cmd="throughput", k=k, c=c, input=inp, threads=t,
                                                   layout=r, seconds=secs, infer_seconds=isecs)
                        except Exception as e:  # a failed measurement is reported, not fatal
                            errors.append(f"throughput {r} {kc(k, c)} {inp} {t}t: {e}")
                            line.append(f"{r} ERROR")
                            continue
                        res.update({"runner": r, "rep": rep, "load1": os.getloadavg()[0]})
                        runs.append(res)
                        line.append(f"{r} {res['train_images_per_second_median_step']:.0f}/"
                                    f"{res['infer_images_per_second']:.0f}")
                    log(f"throughput {n}/{total} {inp} {kc(k, c)} {t}t (train/infer img/s): "
                        + ", ".join(line))


def throughput_tables(o, results):
    runs = results.get("throughput_runs", [])
    summary = []

    def med(runner, inp, k, c, t, key):
        return median([r[key] for r in runs if r["runner"] == runner and r["input"] == inp
                       and r["k"] == k and r["c"] == c and r["threads"] == t])

    lines = []
    loads = [r["load1"] for r in runs if "load1" in r]
    if loads:
        lines.append(f"\n1-minute load average during the throughput runs: min {min(loads):.1f}, "
                     f"median {median(loads):.1f}, max {max(loads):.1f} (2 cores; above ~2 other "
                     f"processes share the cores and 2-thread figures suffer most)")
    for t in o.threads:
        lines.append(f"\n### Throughput, {t} thread{'s' if t > 1 else ''}, batch 16 "
                     f"(images/s, median of {o.reps} alternating runs)\n\n"
                     "Training: batch / median step time of each run (window mean: images / "
                     "elapsed time over the whole timed window). Ratio: nanonas / PyTorch's faster "
                     "layout (bold). Inference: window mean.\n")
        lines.append("| input | (k,c) | channels | MACC | nanonas train | PyTorch train NCHW | "
                     "PyTorch train CL | train ratio | train ratio (window mean) | "
                     "nanonas infer | PyTorch infer (best layout) | infer ratio |")
        lines.append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for inp in INPUTS:
            for (k, c) in GRID:
                chans = next((r["channels"] for r in runs if r["input"] == inp and r["k"] == k
                              and r["c"] == c), [])
                macc = macc_of(k, c, inp)
                for r in runs:  # the peer must build the very network nanonas builds
                    if (r["input"] == inp and r["k"] == k and r["c"] == c
                            and (r["channels"] != chans
                                 or r.get("macc", macc) != macc)):
                        results.setdefault("errors", []).append(
                            f"architecture mismatch {inp} {kc(k, c)}: {r['runner']} has channels "
                            f"{r['channels']} MACC {r.get('macc', macc)}, expected {chans} {macc}")
                step = "train_images_per_second_median_step"
                window = "train_images_per_second"
                nn_tr = med("nanonas", inp, k, c, t, step)
                nn_win = med("nanonas", inp, k, c, t, window)
                nn_in = med("nanonas", inp, k, c, t, "infer_images_per_second")
                pt = {l: med(l, inp, k, c, t, step) for l in LAYOUTS}
                pw = {l: med(l, inp, k, c, t, window) for l in LAYOUTS}
                pi = {l: med(l, inp, k, c, t, "infer_images_per_second") for l in LAYOUTS}
                ratio = div(nn_tr, best_of(pt))
                wratio = div(nn_win, best_of(pw))
                iratio = div(nn_in, best_of(pi))
                summary.append({"input": inp, "k": k, "c": c, "threads": t, "nanonas_train": nn_tr,
                                "peer_train": best_of(pt), "train_ratio": ratio,
                                "nanonas_train_window": nn_win, "peer_train_window": best_of(pw),
                                "train_ratio_window": wratio,
                                "nanonas_infer": nn_in, "peer_infer": best_of(pi),
                                "infer_ratio": iratio, "pytorch_train": pt,
                                "pytorch_train_window": pw, "pytorch_infer": pi})
                mark = lambda d, l: f"**{fmt(d[l])}**" if d[l] == best_of(d) else fmt(d[l])
                lines.append(
                    f"| {inp} | {kc(k, c)} | {','.join(map(str, chans))} | "
                    f"{fmt(macc)} | {fmt(nn_tr)} | {mark(pt, 'nchw')} | "
                    f"{mark(pt, 'channels_last')} | **{fmt(ratio, 2)}x** | {fmt(wratio, 2)}x | "
                    f"{fmt(nn_in)} | {fmt(best_of(pi))} | {fmt(iratio, 2)}x |")
    results["throughput_summary"] = summary
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def accuracy(o, peer, results):
    runs = results.setdefault("accuracy_runs", [])
    errors = results.setdefault("errors", [])
    for (k, c) in [(4, 2), (8, 2)]:
        for seed in o.seeds:
            with tempfile.NamedTemporaryFile(suffix=".split", delete=False) as f:
                split_path = f.name
            try:
                common = ["--k", str(k), "--c", str(c), "--seed", str(seed), "--threads",
                          str(o.accuracy_threads), "--limit", str(o.limit)]
                split_arg = {}
                if o.bin:
                    try:
                        res, _ = run_json([o.bin, "accuracy"] + common + ["--split-out", split_path])
                        res["runner"] = "nanonas"
                        runs.append(res)
                        split_arg = {"split_file": split_path}
                        log(f"accuracy nanonas {kc(k, c)} seed {seed}: best "
                            f"{100 * res['best_validation_accuracy']:.2f}% in {res['seconds']:.0f}s")
                    except Exception as e:
                        errors.append(f"accuracy nanonas {kc(k, c)} seed {seed}: {e}")
                try:  # the peer trains on the very split nanonas used (its own if none)
                    res = peer.request(cmd="accuracy", k=k, c=c, seed=seed,
                                       threads=o.accuracy_threads, layout="channels_last",
                                       limit=o.limit, **split_arg)
                    res["runner"] = "pytorch"
                    runs.append(res)
                    log(f"accuracy pytorch {kc(k, c)} seed {seed}: best "
                        f"{100 * res['best_validation_accuracy']:.2f}% in {res['seconds']:.0f}s")
                except Exception as e:
                    errors.append(f"accuracy pytorch {kc(k, c)} seed {seed}: {e}")
            finally:
                os.unlink(split_path)


def accuracy_table(o, results):
    runs = results.get("accuracy_runs", [])
    if not runs:
        return ""
    n_train = runs[0]["train_images"]
    n_val = runs[0]["validation_images"]
    lines = [f"\n### Fashion-MNIST 28x28x1, 3 epochs, batch 16, Adam 1e-3: best validation "
             f"accuracy (%), {n_train} train / {n_val} validation images, same split for both "
             f"({o.accuracy_threads} thread(s))\n",
             "| (k,c) | seed | nanonas | PyTorch | nanonas last epoch | PyTorch last epoch | "
             "nanonas s | PyTorch s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    summary = []
    for (k, c) in [(4, 2), (8, 2)]:
        per = {}
        for r in runs:
            if r["k"] == k and r["c"] == c:
                per.setdefault(r["seed"], {})[r["runner"]] = r
        for seed in sorted(per):
            a, b = per[seed].get("nanonas"), per[seed].get("pytorch")
            g = lambda r, key, s=100: fmt(s * r[key], 2 if s == 100 else 0) if r else "n/a"
            lines.append(f"| {kc(k, c)} | {seed} | {g(a, 'best_validation_accuracy')} | "
                         f"{g(b, 'best_validation_accuracy')} | "
                         f"{g(a, 'final_validation_accuracy')} | "
                         f"{g(b, 'final_validation_accuracy')} | {g(a, 'seconds', 1)} | "
                         f"{g(b, 'seconds', 1)} |")
        mean = lambda who: (statistics.mean(100 * p[who]["best_validation_accuracy"]
                                            for p in per.values() if who in p)
                            if any(who in p for p in per.values()) else float("nan"))
        ma, mb = mean("nanonas"), mean("pytorch")
        diff = ma - mb
        summary.append({"k": k, "c": c, "nanonas_mean": ma, "pytorch_mean": mb, "diff": diff,
                        "seeds": len(per)})
        lines.append(f"| {kc(k, c)} | **mean of {len(per)}** | **{fmt(ma, 2)}** | "
                     f"**{fmt(mb, 2)}** | difference {fmt(diff, 2)} points | | | |")
    results["accuracy_summary"] = summary
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def memory(o, results):
    runs = results.setdefault("memory_runs", [])
    errors = results.setdefault("errors", [])
    cands = [(16, 3)] if o.quick else GRID
    for (k, c) in cands:
        if not o.bin:
            break
        try:
            res, rss = run_json([o.bin, "memory", "--k", str(k), "--c", str(c), "--input", "50x50x3",
                                 "--images", str(o.memory_images), "--threads",
                                 str(o.memory_threads)])
            res.update({"runner": "nanonas", "os_maxrss_kib": rss})
            runs.append(res)
            log(f"memory nanonas {kc(k, c)}: {rss * 1024 / 1e6:.1f} MB in {res['seconds']:.0f}s")
        except Exception as e:
            errors.append(f"memory nanonas {kc(k, c)}: {e}")
    if o.memory_peer:
        k, c = 4, 2
        try:
            res, rss = run_json([o.python, os.path.join(HERE, "torch_peer.py"), "memory", "--k",
                                 str(k), "--c", str(c), "--input", "50x50x3", "--images",
                                 str(o.memory_images), "--threads", str(o.memory_threads)])
            res.update({"runner": "pytorch", "os_maxrss_kib": rss})
            runs.append(res)
            log(f"memory pytorch {kc(k, c)}: {rss * 1024 / 1e6:.1f} MB in {res['seconds']:.0f}s")
        except Exception as e:
            errors.append(f"memory pytorch {kc(k, c)}: {e}")


def memory_table(o, results):
    runs = results.get("memory_runs", [])
    if not runs:
        return ""
    lines = [f"\n### Peak memory of a 3-epoch evaluation, {o.memory_images} synthetic 50x50x3 "
             f"images (0.3 validation), {o.memory_threads} thread(s): ru_maxrss of the child\n",
             "| runner | (k,c) | peak RSS MB | of which pixels MB | engine estimate MB | "
             "seconds |", "|---|---|---:|---:|---:|---:|"]
    for r in runs:  # MB = 10^6 bytes, as the target is stated
        est = r.get("estimated_bytes")
        ds = r.get("dataset_bytes")
        lines.append(f"| {r['runner']} | {kc(r['k'], r['c'])} | "
                     f"{r['os_maxrss_kib'] * 1024 / 1e6:.1f} | "
                     f"{fmt(ds / 1e6, 1) if ds else 'n/a'} | "
                     f"{fmt(est / 1e6, 1) if est else 'n/a'} | {r['seconds']:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def targets(results):
    out = ["\n### Targets\n"]
    summary = results.get("throughput_summary", [])
    for t in sorted({s["threads"] for s in summary}, reverse=True):
        tp = [s for s in summary if s["threads"] == t]
        if not all(s["train_ratio"] == s["train_ratio"] for s in tp):
            out.append(f"- training throughput, {t} thread(s): no nanonas figures (not built?)")
            continue
        worst = min(tp, key=lambda s: s["train_ratio"])
        below = [f"{s['input']} {kc(s['k'], s['c'])} {s['train_ratio']:.2f}x"
                 for s in tp if s["train_ratio"] < TRAIN_TARGET]
        out.append(f"- training throughput >= {TRAIN_TARGET:.0f}x PyTorch on every candidate, "
                   f"{t} thread(s){' (the grid of issue 2)' if t == 2 else ''}: "
                   f"{'NOT MET' if below else 'MET'}; lowest {worst['input']} "
                   f"{kc(worst['k'], worst['c'])} {worst['train_ratio']:.2f}x"
                   + (f"; below target: {', '.join(below)}" if below else ""))
        wbelow = [f"{s['input']} {kc(s['k'], s['c'])} {s['train_ratio_window']:.2f}x"
                  for s in tp if not s["train_ratio_window"] >= TRAIN_TARGET]
        out.append(f"  (by window mean: {'NOT MET' if wbelow else 'MET'}"
                   + (f"; below target: {', '.join(wbelow)}" if wbelow else "") + ")")
    if not summary:
        out.append("- training throughput: not measured")
    acc = results.get("accuracy_summary", [])
    if acc and all(a["diff"] == a["diff"] for a in acc):
        met = all(abs(a["diff"]) <= ACCURACY_POINTS for a in acc)
        out.append(f"- Fashion-MNIST accuracy within {ACCURACY_POINTS} points of PyTorch: "
                   f"{'MET' if met else 'NOT MET'} ("
                   + "; ".join(f"{kc(a['k'], a['c'])} {a['diff']:+.2f}" for a in acc) + ")")
    else:
        out.append("- accuracy: not measured for both")
    mem = [r for r in results.get("memory_runs", []) if r["runner"] == "nanonas"]
    if mem:
        peak = max(mem, key=lambda r: r["os_maxrss_kib"])
        mb = peak["os_maxrss_kib"] * 1024 / 1e6
        out.append(f"- peak memory <= {MEMORY_MB:.0f} MB: {'MET' if mb <= MEMORY_MB else 'NOT MET'}"
                   f" (largest {mb:.1f} MB for {kc(peak['k'], peak['c'])})")
    else:
        out.append("- peak memory: not measured")
    return "\n".join(out)


def header(o):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  cwd=HERE).stdout.strip()
        except Exception:
            return "?"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    torch_version = sh([o.python, "-c", "import torch; print(torch.__version__)"])
    return (f"nanonas benchmarks, {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit "
            f"{sh(['git', 'rev-parse', '--short', 'HEAD'])}"
            f"{' (+ uncommitted changes)' if sh(['git', 'status', '--porcelain', '.']) else ''}\n"
            f"machine: {cpu}, {os.cpu_count()} cores, load average at start "
            f"{os.getloadavg()[0]:.2f}; PyTorch {torch_version} (Debian, system oneDNN); "
            f"{'quick' if o.quick else 'full'} run")


def main():
    p = argparse.ArgumentParser(description="nanonas vs PyTorch benchmarks (see bench/README.md)")
    p.add_argument("--bin", default="", help="nanonas-bench binary ('' = PyTorch figures only)")
    p.add_argument("--python", default="/usr/bin/python3", help="Python with python3-torch")
    p.add_argument("--quick", action="store_true", help="1 repetition, shorter windows, 1 seed")
    p.add_argument("--only", default="throughput,accuracy,memory")
    p.add_argument("--reps", type=int, default=0, help="throughput repetitions (default 3, quick 1)")
    p.add_argument("--threads", default="2,1", help="thread counts for the throughput tables")
    p.add_argument("--seeds", default="", help="accuracy seeds (default 1,2,3, quick 1)")
    p.add_argument("--limit", type=int, default=0,
                   help="accuracy: use only the first N Fashion-MNIST training images")
    p.add_argument("--accuracy-threads", type=int, default=1,
                   help="threads of the accuracy runs (1: robust on a busy machine; the figures "
                        "do not depend on it)")
    p.add_argument("--memory-images", type=int, default=10000)
    p.add_argument("--memory-threads", type=int, default=1)
    p.add_argument("--json-out", default="", help="write every raw measurement here")
    o = p.parse_args()
    parts = set(o.only.split(","))
    if not parts <= {"throughput", "accuracy", "memory"}:
        p.error(f"--only takes throughput,accuracy,memory, got '{o.only}'")
    o.reps = o.reps or (1 if o.quick else 3)
    o.seconds = 0.5 if o.quick else 0.8
    o.infer_seconds = 0.25 if o.quick else 0.3
    o.threads = [int(t) for t in o.threads.split(",")]
    o.seeds = [int(s) for s in o.seeds.split(",")] if o.seeds else ([1] if o.quick else [1, 2, 3])
    o.memory_peer = not o.quick
    if o.bin and not os.access(o.bin, os.X_OK):
        log(f"{o.bin} is not built: PyTorch figures only")
        o.bin = ""

    started = time.time()
    head = header(o)
    print(head, flush=True)
    results = {"header": head}
    peer = TorchPeer(o.python)
    try:
        if "throughput" in parts:
            throughput(o, peer, results)
        if "accuracy" in parts:
            accuracy(o, peer, results)
    finally:
        peer.close()
    if "memory" in parts:
        memory(o, results)

    report = [throughput_tables(o, results) if "throughput" in parts else "",
              accuracy_table(o, results), memory_table(o, results), targets(results)]
    errors = list(dict.fromkeys(results.get("errors", [])))
    if errors:
        report.append("\n### Failed measurements\n" + "\n".join(f"- {e}" for e in errors))
    report.append(f"\n(total {time.time() - started:.0f} s; load average at end "
                  f"{os.getloadavg()[0]:.2f})")
    text = "\n".join(r for r in report if r)
    print(text, flush=True)
    results["report"] = text
    if o.json_out:
        with open(o.json_out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
