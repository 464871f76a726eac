"""Writes `tests/data/file_seconds.json`, the seconds each test file took in one run of the suite.

Not a test (pytest does not collect it). The suite runs each file on one pytest-xdist worker (`--dist
loadfile`) and hands the files out in collection order; `conftest.pytest_collection_modifyitems` puts the
costliest files first (longest processing time first; `--no-loadscope-reorder` keeps pytest-xdist from sorting
them by their number of tests instead), so that the two workers end together rather than one waiting while the
other runs a long file handed out last. On 2026-12-04 (2-core AMD EPYC, 1,082 tests, 2,160 test-seconds) the
order by number of tests ended the two workers' shares at 1,130 and 1,030 s (simulated from these seconds; the
run took 1,136 s), the costliest-first order at 1,083 and 1,077 s; measured in three runs since, the time the
two cores were not both busy (68, 73, 98 s against 78 s) moved within the run-to-run spread, so the order only
guards against a long file handed out last. The order never selects: every test runs,
each file's tests in their own order. Refresh the table after a file gains or loses minutes, from the
repository root:

    python -m pytest --durations=0 > /tmp/suite.log
    python tests/data/measure_file_seconds.py /tmp/suite.log

Example:
    >>> import subprocess, sys
    >>> subprocess.run([sys.executable, "tests/data/measure_file_seconds.py", "/tmp/suite.log"],
    ...                check=True)  # doctest: +SKIP
"""

import argparse
import collections
import datetime
import os
import re
import sys

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "file_seconds.json")
DURATION = re.compile(r"\s*([\d.]+)s (?:setup|call|teardown)\s+(tests/[^:]+\.py)::")


def file_seconds(lines):
    """`{test file: seconds}` summed over the setup, call and teardown lines of pytest's `--durations=0`."""
    seconds = collections.Counter()
    for line in lines:
        match = DURATION.match(line)
        if match:
            seconds[match.group(2)] += float(match.group(1))
    return {path: round(value, 1) for path, value in sorted(seconds.items())}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the output of `python -m pytest --durations=0`")
    args = parser.parse_args(argv)
    try:
        with open(args.log) as f:
            seconds = file_seconds(f)
    except OSError as error:
        parser.exit(2, f"error: log {args.log} cannot be read: {error.strerror}\n")
    if not seconds:
        parser.exit(2, f"error: log {args.log} holds no `--durations=0` lines (run pytest with --durations=0)\n")
    from keras_resnet import run_log

    run_log.write_json(TABLE, {"measured": datetime.date.today().isoformat(), "seconds": seconds})
    print(f"{TABLE}: {len(seconds)} files, {sum(seconds.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
