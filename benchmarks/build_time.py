"""Build time of the networks, random and from a weights file, against keras.applications in the same run.

Each network is timed in fresh processes (a notebook's first `ResNet152()` pays for what a process has not
warmed yet), `--processes` of them per network and side, alternating ours and the peer so that load on the
machine hits both alike; each process builds `--builds` times and reports its first and its last build.
"From a file" builds with `weights=` a `.weights.h5` of the same network written beforehand, which measures
the loading as well (keras.applications: `weights=` the same kind of file).

Usage:
    python benchmarks/build_time.py [--networks resnet50 resnet152 resnet152v2 resnet1202] [--processes 3]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

PEERS = {  # our registry name: the keras.applications constructor of the same network
    "resnet50": "ResNet50", "resnet101": "ResNet101", "resnet152": "ResNet152",
    "resnet50v2": "ResNet50V2", "resnet101v2": "ResNet101V2", "resnet152v2": "ResNet152V2",
}

CHILD = r'''
import json, sys, time
side, name, builds, weights = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] or None
import keras
if side == "ours":
    import keras_resnet
    build = lambda: keras_resnet.build(name, weights=weights)
else:
    build = lambda: getattr(keras.applications, name)(weights=weights)
seconds = []
for _ in range(builds):
    start = time.perf_counter()
    build()
    seconds.append(time.perf_counter() - start)
    keras.backend.clear_session()
print("RESULT", json.dumps(seconds))
'''


def run_child(side, name, builds, weights):
    out = subprocess.run([sys.executable, "-c", CHILD, side, name, str(builds), weights or ""], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{side} {name}: the build failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.split("RESULT", 1)[1])


def write_weights(side, name, directory):
    path = os.path.join(directory, f"{side}-{name}.weights.h5")
    code = ("import sys, keras, keras_resnet\n"
            "m = keras_resnet.build(sys.argv[2]) if sys.argv[1] == 'ours' else getattr(keras.applications, "
            "sys.argv[2])(weights=None)\nm.save_weights(sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, side, name, path], check=True, capture_output=True)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["resnet50", "resnet152", "resnet152v2", "resnet1202"])
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per network and side")
    parser.add_argument("--builds", type=int, default=3, help="builds per process (first and last reported)")
    parser.add_argument("--no_files", action="store_true", help="skip the builds from a weights file")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    print(f"python {platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print("| network | weights | side | first build, s (median) | last build, s (median) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as directory:
        for name in args.networks:
            sides = [("ours", name)] + ([("keras.applications", PEERS[name])] if name in PEERS else [])
            for weights_kind in ["random"] + ([] if args.no_files else ["file"]):
                files = {side: write_weights(side, built, directory) if weights_kind == "file" else None
                         for side, built in sides}
                results = {side: [] for side, _ in sides}
                for _ in range(args.processes):
                    for side, built in sides:  # alternating: load hits both alike
                        results[side].append(run_child("ours" if side == "ours" else "peer", built, args.builds,
                                                       files[side]))
                for side, built in sides:
                    first = statistics.median(r[0] for r in results[side])
                    last = statistics.median(r[-1] for r in results[side])
                    print(f"| {name} | {weights_kind} | {side} | {first:.2f} | {last:.2f} |", flush=True)


if __name__ == "__main__":
    main()
