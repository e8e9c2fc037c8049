#!/usr/bin/env python3
"""Checks the Grafana dashboard against the code and promtool.

Every panel expression must parse as PromQL (`promtool check rules` on a generated rules file),
name only metrics that the coordinator or the worker register (`.Name("...")` in their metrics
sources), and panel ids must be unique.

Usage: check_dashboard.py SOURCE_DIR. Exit 0: fine; 1: a finding (printed); 77: no promtool.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

METRICS_SOURCES = ("server/coordinator/metrics.cc", "worker/service/worker_metrics.cc",
                   "common/metrics/build_info_metric.cc")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def main():
    src = sys.argv[1]
    with open(os.path.join(src, "deploy/grafana/nanonas-dashboard.json")) as f:
        dashboard = json.load(f)
    declared = set()
    for path in METRICS_SOURCES:
        with open(os.path.join(src, path)) as f:
            declared |= set(re.findall(r'\.Name\("([a-z_:]+)"\)', f.read()))
    findings = []
    ids = [p.get("id") for p in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        findings.append(f"duplicate panel ids: {ids}")
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            if not expr:
                findings.append(f"panel {panel['title']!r}: target without expr")
                continue
            exprs.append(expr)
            for name in re.findall(r"\bnanonas_[a-z0-9_]+", expr):
                base = name
                for suffix in HISTOGRAM_SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in declared:
                        base = name[: -len(suffix)]
                if base not in declared:
                    findings.append(f"panel {panel['title']!r}: {name} is not a registered metric")
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not installed (Debian package prometheus)")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "dashboard-rules.yml")
        with open(rules, "w") as f:
            f.write("groups:\n  - name: dashboard\n    rules:\n")
            for i, expr in enumerate(exprs):
                # A JSON string is a valid YAML double-quoted scalar.
                f.write(f"      - record: dashboard:panel_expr_{i}\n")
                f.write(f"        expr: {json.dumps(expr)}\n")
        run = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
        if run.returncode != 0:
            findings.append("promtool check rules:\n" + run.stdout + run.stderr)
    for finding in findings:
        print(finding)
    if not findings:
        print(f"{len(exprs)} dashboard expressions pass promtool and name registered metrics")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
