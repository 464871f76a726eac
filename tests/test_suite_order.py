"""The suite's own order (`conftest.pytest_collection_modifyitems`): costliest files first, nothing dropped."""

import itertools
import os
from pathlib import Path
from types import SimpleNamespace

import conftest
from conftest import REPO, file_of, file_seconds


def test_the_costliest_files_come_first_and_each_files_tests_stay_together(request):
    seconds, default = file_seconds()
    files = [path for path, _ in itertools.groupby(map(file_of, request.session.items))]
    assert len(files) == len(set(files)), "a file's tests are split apart"
    costs = [seconds.get(path, default) for path in files]
    assert costs == sorted(costs, reverse=True), list(zip(files, costs))


def test_every_file_the_table_names_exists():
    seconds, _ = file_seconds()
    assert len(seconds) >= 40
    missing = [path for path in seconds if not os.path.isfile(os.path.join(REPO, path))]
    assert not missing, f"{missing}: renamed or removed; refresh with tests/data/measure_file_seconds.py"


def test_the_order_selects_nothing_away_and_keeps_each_files_own_order():
    """The hook on stand-in items of three files (one not in the table): the same items, by file, costliest file
    first, each file's items in the order they came."""
    seconds, _ = file_seconds()
    cheap, dear = sorted(seconds, key=seconds.get)[0], sorted(seconds, key=seconds.get)[-1]
    unknown = "tests/test_not_in_the_table.py"
    items = [SimpleNamespace(path=Path(REPO) / path, name=name) for path, name in
             [(cheap, "c1"), (unknown, "u1"), (dear, "d1"), (cheap, "c2"), (dear, "d2"), (unknown, "u2")]]
    given = list(items)
    conftest.pytest_collection_modifyitems(None, None, items)
    assert sorted(map(id, items)) == sorted(map(id, given))
    assert [item.name for item in items] == ["d1", "d2", "u1", "u2", "c1", "c2"]
