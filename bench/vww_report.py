#!/usr/bin/env python3
"""Helpers of bench/vww.sh (standard library only).

  vww_report.py stamp LOG              copies stdin to stdout, and each line to LOG prefixed with
                                       the wall clock (seconds since the epoch)
  vww_report.py sample OUT PID NAME... every second, the peak memory of each named process
                                       (VmHWM), the peak of its descendants (each child's VmHWM,
                                       read while it lives) and the peak of the anonymous memory
                                       (RssAnon) of the process and all its descendants summed at
                                       one sample, written to OUT (JSON) after every sample; ends
                                       when every PID is gone
  vww_report.py summarize RUN_DIR      reads RUN_DIR/{times.json,watch.log,job.json,memory.json}
                                       and the downloaded artifacts, prints the breakdown and
                                       writes RUN_DIR/summary.json
  vww_report.py check SUMMARY          the ctest's checks: every phase, a result (k, c), a model
                                       file whose size equals the reported Flash (exit 1 if not)
"""
import json
import os
import re
import sys
import time
from datetime import datetime

NANONAS_PUBLISHED_SECONDS = 3 * 3600 + 53 * 60  # NanoNAS, VWW on a laptop: 3 h 53 min
PHASES = ["generation", "upload_submit", "preparation", "search", "final_training", "export"]


def stamp(log_path):
    with open(log_path, "a", buffering=1) as log:
        for line in sys.stdin:
            log.write(f"{time.time():.3f} {line}")
            sys.stdout.write(line)
            sys.stdout.flush()


def read_status(pid):
    """{field: kB} of /proc/PID/status's memory lines, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            out = {}
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:", "RssAnon:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
            return out
    except OSError:
        return None


def children_map():
    """{ppid: [pid, ...]} of every process."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid, kids):
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def sample(out_path, pids_and_names):
    procs = [(int(pids_and_names[i]), pids_and_names[i + 1])
             for i in range(0, len(pids_and_names), 2)]
    peaks = {name: {"pid": pid, "vm_hwm_bytes": 0, "children_peak_vm_hwm_bytes": 0,
                    "rss_anon_peak_bytes": 0, "tree_rss_anon_peak_bytes": 0,
                    "children_seen": 0} for pid, name in procs}
    seen_children = {name: set() for _, name in procs}
    samples = 0
    while True:
        alive = False
        kids = children_map()
        for pid, name in procs:
            st = read_status(pid)
            if st is None:
                continue
            alive = True
            p = peaks[name]
            p["vm_hwm_bytes"] = max(p["vm_hwm_bytes"], st.get("VmHWM", 0))
            p["rss_anon_peak_bytes"] = max(p["rss_anon_peak_bytes"], st.get("RssAnon", 0))
            tree_anon = st.get("RssAnon", 0)
            for child in descendants(pid, kids):
                cst = read_status(child)
                if cst is None:
                    continue
                tree_anon += cst.get("RssAnon", 0)
                seen_children[name].add(child)
                p["children_peak_vm_hwm_bytes"] = max(p["children_peak_vm_hwm_bytes"],
                                                      cst.get("VmHWM", 0))
            p["children_seen"] = len(seen_children[name])
            p["tree_rss_anon_peak_bytes"] = max(p["tree_rss_anon_peak_bytes"], tree_anon)
        samples += 1
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"interval_seconds": 1.0, "samples": samples, "processes": peaks}, f)
        os.replace(tmp, out_path)
        if not alive:
            return
        time.sleep(1.0)


def rfc3339(text):
    """Seconds since the epoch of a protobuf JSON Timestamp ("2026-12-04T16:35:11.123456Z")."""
    if not text:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", text)
    if not m:
        return None
    base = datetime.strptime(m.group(1) + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp()
    return base + (float(m.group(2)) if m.group(2) else 0.0)


def load_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def watch_events(path):
    """[(time, line)] of the stamped watch log."""
    events = []
    try:
        with open(path) as f:
            for line in f:
                t, _, text = line.rstrip("\n").partition(" ")
                events.append((float(t), text))
    except OSError:
        pass
    return events


def first_time(events, pattern):
    rx = re.compile(pattern)
    for t, text in events:
        if rx.search(text):
            return t
    return None


def diff(a, b):
    return None if a is None or b is None else round(b - a, 3)


def summarize(run_dir):
    times = load_json(os.path.join(run_dir, "times.json"), {})
    job = load_json(os.path.join(run_dir, "job.json"), {})
    memory = load_json(os.path.join(run_dir, "memory.json"), {"processes": {}})
    events = watch_events(os.path.join(run_dir, "watch.log"))

    submit_start = times.get("submit_start")
    submitted = first_time(events, r"^[0-9a-zA-Z_-]+$")  # the job id line
    first_running = first_time(events, r"^candidate #\d+ .* RUNNING")
    final_start = first_time(events, r"^final training k=\d+ c=\d+ (PENDING|RUNNING)")
    final_done = first_time(events, r"^final training k=\d+ c=\d+ DONE")
    watch_end = times.get("watch_end")

    candidates = job.get("candidates", [])
    done = [c for c in candidates if c.get("state") == "CANDIDATE_STATE_DONE"]
    final = job.get("final_training", {})
    result = job.get("result", {})
    spec = job.get("spec", {})
    val_split = float(spec.get("validation_split") or 0.3)
    num_images = int(job.get("num_images") or 0)
    test_images = int(final.get("test_images") or 0)
    train_images = num_images - int(num_images * val_split)

    created = rfc3339(job.get("created"))
    started = rfc3339(job.get("started"))  # the job went RUNNING: its dataset was prepared
    phases = {
        "generation": times.get("generation_seconds"),
        "upload_submit": diff(submit_start, submitted),
        "preparation": diff(created, started),
        "search": diff(started, final_start),
        "final_training": diff(final_start, final_done),
        "export": None,
    }
    export_wall = diff(final_done, watch_end)
    if export_wall is not None and times.get("download_seconds") is not None:
        phases["export"] = round(export_wall + times["download_seconds"], 3)
    job_seconds = diff(submit_start, times.get("download_end"))

    cand_seconds = sum(float(c.get("duration_seconds") or 0) for c in candidates)
    ips = [float(c["train_images_per_second"]) for c in done if c.get("train_images_per_second")]
    final_epochs = len(final.get("epochs", []))
    final_duration = float(final.get("duration_seconds") or 0)
    peak_children = [int(c.get("peak_memory_bytes") or 0) for c in candidates]
    artifacts_dir = os.path.join(run_dir, "artifacts")
    model = os.path.join(artifacts_dir, "model.tflite")
    procs = memory.get("processes", {})

    summary = {
        "date_utc": times.get("date_utc"),
        "commit": times.get("commit"),
        "images": {"train": num_images, "train_split": train_images,
                   "validation_split": num_images - train_images, "test": test_images},
        "target": "NUCLEO-L412KB",
        "slots": times.get("slots"),
        "job_id": job.get("id"),
        "state": job.get("state"),
        "phases_seconds": phases,
        "phase_notes": {
            "generation": "nanonas-make-standin wall clock (recorded one when the dataset was reused)",
            "upload_submit": "`nanonas submit`: tar and upload of both folders (streamed), the "
                             "coordinator storing them, SubmitJob, until the job id is printed",
            "preparation": "the job record's created until started: QUEUED -> PREPARING (decode, "
                           "validate and pack both sets at 50x50x3) -> RUNNING",
            "search": "job started (RUNNING) until the final training is scheduled (includes the "
                      "worker's dataset fetch inside the first candidate)",
            "final_training": "final training scheduled until DONE (training, uint8 quantization "
                              "and .tflite export on the worker)",
            "export": "final training DONE until the job ended, plus `nanonas get --out`",
        },
        "job_seconds": job_seconds,
        "job_record": {
            "created_to_started_seconds": diff(rfc3339(job.get("created")),
                                               rfc3339(job.get("started"))),
            "created_to_finished_seconds": diff(rfc3339(job.get("created")),
                                                rfc3339(job.get("finished"))),
            "started_to_finished_seconds": diff(rfc3339(job.get("started")),
                                                rfc3339(job.get("finished"))),
            "candidates": len(candidates),
            "candidates_done": len(done),
            "candidates_duration_seconds": round(cand_seconds, 3),
            "final_training_duration_seconds": final_duration,
            "final_training_epochs": final_epochs,
        },
        "throughput": {
            "decoding_images_per_second": (round((num_images + test_images) / phases["preparation"], 1)
                                           if phases["preparation"] else None),
            "search_training_images_per_second_median": (round(sorted(ips)[len(ips) // 2], 1)
                                                         if ips else None),
            "final_training_images_per_second": (round(train_images * final_epochs / final_duration, 1)
                                                 if final_duration > 0 else None),
        },
        "memory_bytes": {
            "coordinator_vm_hwm": procs.get("coordinator", {}).get("vm_hwm_bytes"),
            "worker_vm_hwm": procs.get("worker", {}).get("vm_hwm_bytes"),
            "worker_children_peak_vm_hwm": procs.get("worker", {}).get("children_peak_vm_hwm_bytes"),
            "candidates_recorded_peak": max(peak_children) if peak_children else None,
            "final_training_recorded_peak": int(final.get("peak_memory_bytes") or 0) or None,
            "coordinator_rss_anon_peak": procs.get("coordinator", {}).get("rss_anon_peak_bytes"),
            "worker_tree_rss_anon_peak": procs.get("worker", {}).get("tree_rss_anon_peak_bytes"),
            "candidates_recorded_anonymous_peak": max(
                [int(c.get("peak_anonymous_bytes") or 0) for c in candidates] or [0]) or None,
            "final_training_recorded_anonymous_peak": int(final.get("peak_anonymous_bytes") or 0)
                                                      or None,
        },
        "final_training_threads": int(final.get("threads") or 1),
        "result": {
            "found": bool(result.get("found")),
            "k": result.get("k"), "c": result.get("c"),
            "search_validation_accuracy": result.get("validation_accuracy"),
            "macc": int(result.get("macc") or 0),
            "final_best_validation_accuracy": final.get("best_validation_accuracy"),
            "final_uint8_validation_accuracy": final.get("quantized_validation_accuracy"),
            "float_test_accuracy": final.get("float_test_accuracy"),
            "uint8_test_accuracy": final.get("quantized_test_accuracy"),
            "flash_bytes": int(final.get("flash_bytes") or 0),
            "ram_bytes": int(final.get("ram_bytes") or 0),
            "model_file": model if os.path.exists(model) else None,
            "model_file_bytes": os.path.getsize(model) if os.path.exists(model) else None,
        },
        "nanonas_published_seconds": NANONAS_PUBLISHED_SECONDS,
        "ratio_to_nanonas": (round(job_seconds / NANONAS_PUBLISHED_SECONDS, 4)
                             if job_seconds else None),
    }
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print_summary(summary, run_dir)


def fmt_s(v):
    return "-" if v is None else f"{v:9.1f} s"


def fmt_b(v):
    return "-" if not v else f"{v / 2**20:.1f} MiB"


def print_summary(s, run_dir):
    r, t, m, j = s["result"], s["throughput"], s["memory_bytes"], s["job_record"]
    print(f"\nvww: {s['images']['train']} training images ({s['images']['train_split']} train / "
          f"{s['images']['validation_split']} validation), {s['images']['test']} test; "
          f"target {s['target']}; job {s['job_id']} {s['state']}")
    print("phase                seconds")
    for p in PHASES:
        print(f"  {p:18s} {fmt_s(s['phases_seconds'].get(p))}")
    print(f"  {'whole job':18s} {fmt_s(s['job_seconds'])}   (submit to download; generation "
          f"not counted)")
    print(f"job record: {j['candidates']} candidates ({j['candidates_done']} trained) "
          f"{j['candidates_duration_seconds']:.1f} s of evaluations; final training "
          f"{j['final_training_epochs']} epochs in {j['final_training_duration_seconds']:.1f} s")
    print(f"throughput: decoding {t['decoding_images_per_second']} images/s (images / preparation "
          f"time); training {t['search_training_images_per_second_median']} images/s (median "
          f"candidate), final {t['final_training_images_per_second']} images/s")
    print(f"peak memory: coordinator {fmt_b(m['coordinator_vm_hwm'])}, worker "
          f"{fmt_b(m['worker_vm_hwm'])}, its evaluation children {fmt_b(m['worker_children_peak_vm_hwm'])}"
          f" sampled / {fmt_b(m['candidates_recorded_peak'])} recorded (final training "
          f"{fmt_b(m['final_training_recorded_peak'])})")
    print(f"anonymous memory: coordinator {fmt_b(m['coordinator_rss_anon_peak'])}, worker with its "
          f"children {fmt_b(m['worker_tree_rss_anon_peak'])} (summed per sample); recorded "
          f"candidate {fmt_b(m['candidates_recorded_anonymous_peak'])}, final training "
          f"{fmt_b(m['final_training_recorded_anonymous_peak'])} on "
          f"{s['final_training_threads']} thread(s)")
    if r["found"]:
        acc = lambda v: "-" if v is None else f"{float(v):.4f}"
        print(f"result: k={r['k']} c={r['c']}, search validation "
              f"{acc(r['search_validation_accuracy'])}, final validation "
              f"{acc(r['final_best_validation_accuracy'])} (uint8 "
              f"{acc(r['final_uint8_validation_accuracy'])}), test "
              f"{acc(r['float_test_accuracy'])} float / {acc(r['uint8_test_accuracy'])} uint8; "
              f"Flash {r['flash_bytes']} B, RAM {r['ram_bytes']} B, MACC {r['macc']}")
    else:
        print("result: no candidate fitted")
    if s["ratio_to_nanonas"] is not None:
        print(f"whole job / NanoNAS's published 3 h 53 min (13,980 s): {s['ratio_to_nanonas']:.4f}")
    print(f"summary: {os.path.join(run_dir, 'summary.json')}")


def check(path):
    s = load_json(path)
    problems = []
    if s is None:
        print(f"vww check: cannot read {path}")
        return 1
    for p in PHASES:
        v = s.get("phases_seconds", {}).get(p)
        if not isinstance(v, (int, float)) or v < 0:
            problems.append(f"phase {p} missing or negative: {v!r}")
    r = s.get("result", {})
    if not r.get("found") or not isinstance(r.get("k"), int) or not isinstance(r.get("c"), int):
        problems.append(f"no result (k, c): {r!r}")
    if s.get("state") != "JOB_STATE_SUCCEEDED":
        problems.append(f"job state {s.get('state')}")
    if not r.get("model_file") or r.get("model_file_bytes") != r.get("flash_bytes"):
        problems.append(f"model file {r.get('model_file')} has {r.get('model_file_bytes')} bytes, "
                        f"reported Flash {r.get('flash_bytes')}")
    for key in ("coordinator_vm_hwm", "worker_vm_hwm", "worker_tree_rss_anon_peak"):
        if not s.get("memory_bytes", {}).get(key):
            problems.append(f"no {key}")
    if not s.get("ratio_to_nanonas"):
        problems.append("no ratio to NanoNAS's time")
    for p in problems:
        print(f"vww check: {p}")
    print("vww check: " + ("FAILED" if problems else "ok"))
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "stamp":
        stamp(argv[2])
        return 0
    if len(argv) >= 5 and argv[1] == "sample" and len(argv) % 2 == 1:
        sample(argv[2], argv[3:])
        return 0
    if len(argv) == 3 and argv[1] == "summarize":
        summarize(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
