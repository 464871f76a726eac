"""The examples in the docstrings are run: doctest over every module of `keras_resnet/` (one test each), and
every example that is skipped says why on its own line.

An example is skipped only where it needs what a test run does not have at hand (../shared, a dataset or a
run directory on disk, a GPU machine, minutes of training); the reason stands in a comment before the
directive: `>>> train(config)  # trains for minutes  # doctest: +SKIP`. `tuning/` and `benchmarks/` hold only
such examples, checked for their reason (their modules define flags or start workers when imported, so they
are not imported here); `trainers/` defines absl flags at import and has no examples.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the examples build and
run the paper's networks: Table 1, section 4.2).
"""

import doctest
import importlib
import os
import pathlib
import re

import pytest

from conftest import REPO

ROOT = pathlib.Path(REPO)
SKIP = re.compile(r"#\s*doctest:\s*\+SKIP")
REASONED_SKIP = re.compile(r"#\s*\S[^#]*#\s*doctest:\s*\+SKIP\s*$")


def module_names(package):
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", module_names("keras_resnet"))
def test_the_docstring_examples_run(module):
    mod = importlib.import_module(module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    saved = dict(os.environ)  # an example may set a variable it documents; the next test sees none of it
    try:
        for test in doctest.DocTestFinder().find(mod, module):
            runner.run(test, out=report.append)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert runner.failures == 0, "".join(report)


def test_every_skipped_example_says_why():
    unexplained = []
    for package in ("keras_resnet", "tuning", "benchmarks", "trainers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if SKIP.search(line) and not REASONED_SKIP.search(line):
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not unexplained, ("a skipped example says why in a comment before the directive "
                             "(`>>> x  # needs ../shared  # doctest: +SKIP`):\n" + "\n".join(unexplained))


def test_the_reason_check_catches_a_bare_skip():
    assert REASONED_SKIP.search(">>> train(config)  # trains for minutes  # doctest: +SKIP")
    assert not REASONED_SKIP.search(">>> train(config)  # doctest: +SKIP")
    assert not REASONED_SKIP.search(">>> train(config)  # doctest: +SKIP  (after the directive is no reason)")
