"""`benchmarks/cpu_peers.py`'s main: parse the flags, run the table, print it, write the JSON.

Example:
    >>> main(["--rows=latency20", "--windows=1", "--json=/tmp/cpu_peers.json"])  # a benchmark's own process  # doctest: +SKIP
    0
"""

from __future__ import annotations

from benchmarks.cpu import orchestrator, report
from benchmarks.cpu.settings import parse_args


def main(argv=None):
    """Runs the benchmark; returns 0, or 1 when an output check or a row failed (exit 2: bad flags)."""
    args = parse_args(argv)
    results = orchestrator.run(args)
    print()
    print(report.summary_text(results), flush=True)
    path = report.write_json(args.json, results)
    print(f"results: {path}", flush=True)
    return 0 if results["checks_ok"] else 1
