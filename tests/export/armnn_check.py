#!/usr/bin/env python3
"""Independent-runtime check of nanonas's .tflite export.

Runs the C++ fixture (export_armnn_fixture), which writes models exported by nanonas, a generated
test set and nanonas's own integer-inference outputs; then loads each model with Arm NN's TFLite
parser (Debian python3-pyarmnn, CpuRef backend from libarmnn-cpuref-backend22), runs every image
and requires the predicted class (argmax of the uint8 output) to match nanonas's on >= 99% of
images. Exit 77 (ctest: skipped) when pyarmnn is not installed.
"""
import argparse
import json
import os
import subprocess
import sys

MIN_AGREEMENT = 0.99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True, help="path of export_armnn_fixture")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    try:
        import numpy as np
        import pyarmnn as ann
    except ImportError as e:  # pragma: no cover
        print(f"SKIP: pyarmnn/numpy not available ({e}); install python3-pyarmnn "
              "libarmnn-cpuref-backend22 (scripts/setup.sh)")
        return 77

    os.makedirs(args.workdir, exist_ok=True)
    subprocess.run([args.fixture, args.workdir], check=True)
    with open(os.path.join(args.workdir, "cases.json")) as f:
        cases = json.load(f)

    runtime = ann.IRuntime(ann.CreationOptions())
    failures = 0
    for case in cases:
        base = os.path.join(args.workdir, case["name"])
        h, w, c = case["shape"]
        n, classes = case["images"], case["classes"]
        images = np.fromfile(base + ".images", dtype=np.uint8).reshape(n, 1, h, w, c)
        expected = np.fromfile(base + ".expected", dtype=np.uint8).reshape(n, classes)

        parser = ann.ITfLiteParser()
        network = parser.CreateNetworkFromBinaryFile(base + ".tflite")
        in_name = parser.GetSubgraphInputTensorNames(0)[0]
        out_name = parser.GetSubgraphOutputTensorNames(0)[0]
        in_info = parser.GetNetworkInputBindingInfo(0, in_name)
        out_info = parser.GetNetworkOutputBindingInfo(0, out_name)
        assert tuple(in_info[1].GetShape()) == (1, h, w, c), in_info[1].GetShape()
        assert tuple(out_info[1].GetShape()) == (1, classes), out_info[1].GetShape()
        opt, messages = ann.Optimize(network, [ann.BackendId("CpuRef")], runtime.GetDeviceSpec(),
                                     ann.OptimizerOptions())
        net_id, _ = runtime.LoadNetwork(opt)

        agree = 0
        max_diff = 0
        for i in range(n):
            inputs = ann.make_input_tensors([in_info], [images[i]])
            outputs = ann.make_output_tensors([out_info])
            runtime.EnqueueWorkload(net_id, inputs, outputs)
            got = ann.workload_tensors_to_ndarray(outputs)[0].reshape(classes)
            if int(np.argmax(got)) == int(np.argmax(expected[i])):
                agree += 1
            max_diff = max(max_diff, int(np.max(np.abs(got.astype(np.int32) - expected[i].astype(np.int32)))))
        runtime.UnloadNetwork(net_id)
        rate = agree / n
        ok = rate >= MIN_AGREEMENT
        failures += 0 if ok else 1
        print(f"{case['name']}: Arm NN agrees with nanonas on {agree}/{n} images ({100 * rate:.1f}%), "
              f"max |output difference| {max_diff}/255 -> {'OK' if ok else 'FAIL'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
