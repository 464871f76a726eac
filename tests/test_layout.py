"""The layout contract of the code base: small modules, short functions, public seams, no import cycles.

Static checks over the source (nothing is imported): every module in `keras_resnet/`, `trainers/`,
`tuning/` and `benchmarks/` stays under 400 lines and every function under 80 (its docstring not
counted); project modules import each other without a cycle (imports inside functions count); no module
uses another project module's `_private` names; Keras' and keras-tuner's private names appear only in the
one compat module for each library, and tests use private names only on lines that say why
(`# private: <reason>`). Only `keras_resnet/data/sources.py` tells kinds of data source apart: no other
module compares a value with a source kind's name or checks an instance against a source class. Below the
trainer entry, functions take their part of the run, not the whole `TrainConfig`; no two modules of
`keras_resnet/` share a base name (but `__init__`, `__main__`, `api`, `cli`).
"""

import ast
import pathlib

import pytest

from conftest import REPO

ROOT = pathlib.Path(REPO)
CHECKED = ("keras_resnet", "trainers", "tuning", "benchmarks")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
COMPAT = {"keras": "keras_resnet/compat.py", "keras_tuner": "tuning/kt_compat.py"}
# The trainer entry (`train`, `prepare`, `resolve_run`) and the converters from a `TrainConfig` to its parts are
# the only functions of keras_resnet/training that read the whole config; below them each takes its part.
CONFIG_ENTRY = {"train", "prepare", "resolve_run"}
CONFIG_CONVERTERS = {"data_spec", "model_part", "schedule_part", "runtime_part", "output_part", "resolve_run"}
SOURCES_MODULE = "keras_resnet/data/sources.py"
SOURCE_KINDS = {"folder", "tfrecord", "tfds"}
SOURCE_CLASSES = {"ImageFolder", "ShardDirectory", "TFDSDataset"}
# Underscore names that are public API of the standard library (namedtuple) or dunders.
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files(dirs=CHECKED):
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


MODULES = {module_name(p): p for p in source_files()}


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def is_private(name):
    return name.startswith("_") and not name.startswith("__") and name not in PUBLIC_UNDERSCORE


def function_length(node):
    """Lines of a function from its `def` to its last line, less its docstring."""
    length = node.end_lineno - node.lineno + 1
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        length -= first.end_lineno - first.lineno + 1
    return length


def resolve_from(module, path, node):
    """The absolute module an `ImportFrom` node imports from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def project_target(name):
    """The most specific project module `name` denotes (itself or its closest parent), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def import_edges(module, path):
    """Project modules that `module` imports, anywhere in its body (lazy imports included)."""
    edges = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            targets = [project_target(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, path, node)
            targets = [project_target(f"{base}.{alias.name}") for alias in node.names]
        else:
            continue
        edges.update(t for t in targets if t and t != module)
    return edges


def find_cycle(graph):
    """One import cycle of `graph` (a list of modules, first repeated last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def module_aliases(module, path, tree):
    """Local names bound to project modules by this file's imports: {local name: module}."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if project_target(alias.name) == alias.name:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, path, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return aliases


def dotted(node):
    """`a.b.c` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def own_names(tree):
    """Names this file defines itself (functions, classes, assigned attributes and variables)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def private_uses(path, module=None):
    """(line, text) of each use of another module's private name, or of a Keras/keras-tuner private."""
    tree = parse(path)
    module = module or module_name(path)
    aliases = module_aliases(module, path, tree)
    mine = own_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = resolve_from(module, path, node)
            if project_target(base) and base != module:
                found += [(node.lineno, f"from {base} import {a.name}") for a in node.names if is_private(a.name)]
            if base.split(".")[0] in COMPAT and (".src" in f".{base}" or "._" in f".{base}"):
                found.append((node.lineno, f"from {base} import ..."))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] in COMPAT and (".src" in a.name or "._" in a.name)]
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = dotted(node.value)
            if owner in ("self", "cls") or (owner is None and isinstance(node.value, ast.Call) and
                                           isinstance(node.value.func, ast.Name) and node.value.func.id == "super"):
                continue
            head = (owner or "").split(".")[0]
            if head in aliases or node.attr not in mine:
                found.append((node.lineno, f"{owner or '<expr>'}.{node.attr}"))
    return found


def source_kind_branches(path):
    """(line, text) of each comparison with a source kind's name, or isinstance check against a source class."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                kinds = [i.value for i in items if isinstance(i, ast.Constant) and i.value in SOURCE_KINDS]
                if kinds:
                    found.append((node.lineno, f"compares with {kinds[0]!r}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            names = {dotted(n) or "" for n in ast.walk(node.args[1])} if len(node.args) > 1 else set()
            hit = sorted(n.rpartition(".")[2] for n in names if n.rpartition(".")[2] in SOURCE_CLASSES)
            if hit:
                found.append((node.lineno, f"isinstance(..., {hit[0]})"))
    return sorted(found)


def whole_config_reads(path):
    """(line, function) where a function other than the entry and the converters uses its `config` parameter
    other than by handing it to a converter (`model_part(config)`, `data_spec(config)`, ...)."""
    found = []
    for func in ast.walk(parse(path)):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) or func.name in CONFIG_ENTRY | CONFIG_CONVERTERS:
            continue
        if "config" not in [a.arg for a in func.args.args + func.args.kwonlyargs]:
            continue
        handed = {id(arg) for call in ast.walk(func) if isinstance(call, ast.Call)
                  and (dotted(call.func) or "").rpartition(".")[2] in CONFIG_CONVERTERS for arg in call.args}
        found += [(node.lineno, func.name) for node in ast.walk(func)
                  if isinstance(node, ast.Name) and node.id == "config" and id(node) not in handed]
    return sorted(set(found))


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_small_with_short_functions(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_MODULE_LINES})"
    long = [f"{node.name} (line {node.lineno}): {function_length(node)} lines"
            for node in ast.walk(parse(path)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and function_length(node) > MAX_FUNCTION_LINES]
    assert not long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_no_import_cycles():
    graph = {module: import_edges(module, path) for module, path in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_private_names_stay_in_their_module():
    compat_files = {ROOT / p for p in COMPAT.values()}
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}" for path in source_files()
                 if path not in compat_files for line, text in private_uses(path)]
    assert not offenders, "private names used outside their module / the compat modules:\n" + "\n".join(offenders)


SHARED_BASE_NAMES = {"__init__", "__main__", "api", "cli"}


def test_no_two_modules_share_a_base_name():
    seen = {}
    for path in source_files(("keras_resnet",)):
        if path.stem not in SHARED_BASE_NAMES:
            seen.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"module base names repeat across subpackages (rename to what they hold): {clashes}"


def test_only_the_sources_module_branches_on_a_source_kind():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}" for path in source_files(("keras_resnet",))
                 if path != ROOT / SOURCES_MODULE for line, text in source_kind_branches(path)]
    assert not offenders, (f"source kinds are told apart only in {SOURCES_MODULE} (ask the Source object):\n"
                           + "\n".join(offenders))


def test_below_the_trainer_entry_functions_take_their_part_not_the_whole_config():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}() reads `config`" for path in
                 source_files(("keras_resnet/training",)) if path.name not in ("config.py", "flags.py")
                 for line, name in whole_config_reads(path)]
    assert not offenders, ("below train()/prepare(), a function takes its part of the run (ModelPart, DataSpec, "
                           "SchedulePart, RuntimePart, OutputPart), converting a TrainConfig only through "
                           f"{sorted(CONFIG_CONVERTERS)}:\n" + "\n".join(offenders))


def test_tests_say_why_they_use_private_names():
    offenders = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        lines = path.read_text().splitlines()
        for line, text in private_uses(path, module=f"tests.{path.stem}"):
            if "# private:" not in lines[line - 1] and "# private:" not in lines[line - 2]:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert not offenders, "private names in tests without a `# private: <why>` comment:\n" + "\n".join(offenders)


def test_the_checks_catch_what_they_forbid(tmp_path):
    """The checker itself: a cycle, a long function and private uses are found."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"def f():\n    '''doc\n    more'''\n{body}\n")
    assert function_length(tree.body[0]) == MAX_FUNCTION_LINES + 1
    probe = tmp_path / "probe.py"
    probe.write_text("import keras\nfrom keras_resnet import recipes\nfrom keras.src import ops\n"
                     "bar = keras.utils.Progbar(3)\nbar._values['a'] = 1\nrecipes._hidden()\n"
                     "class A:\n    def f(self):\n        return self._mine\n")
    branching = tmp_path / "branching.py"
    branching.write_text("def f(src, kind):\n    if kind == 'tfds':\n        pass\n    if src.kind in ('folder', 'x'):\n"
                         "        pass\n    return isinstance(src, sources.ImageFolder), kind == 'cifar'\n")
    assert source_kind_branches(branching) == [(2, "compares with 'tfds'"), (4, "compares with 'folder'"),
                                               (6, "isinstance(..., ImageFolder)")]
    reader = tmp_path / "reader.py"
    reader.write_text("def f(config):\n    return config.model\n\ndef g(config):\n    return model_part(config)\n\n"
                      "def train(config):\n    return config.model\n")
    assert whole_config_reads(reader) == [(2, "f")]
    texts = [text for _, text in private_uses(probe, module="probe")]
    assert texts == ["from keras.src import ...", "bar._values", "recipes._hidden"] or sorted(texts) == sorted(
        ["from keras.src import ...", "bar._values", "recipes._hidden"])
