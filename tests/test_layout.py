"""The package's layout is part of the course: the map is complete, each idea is written once, no import cycles,
and the notebooks import the public API only."""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

import mmcourse

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmcourse"
NOTEBOOKS = sorted((ROOT / "solutions").glob("*/*.ipynb"))


def modules() -> dict[str, Path]:
    """Dotted name → file of every module in the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def test_every_module_is_on_its_packages_map():
    """mmcourse/__init__.py and each subpackage's __init__ name every module below them, one line each."""
    for name, path in modules().items():
        if path.name == "__init__.py":
            continue
        parent = PACKAGE / "__init__.py" if path.parent == PACKAGE else path.parent / "__init__.py"
        doc = ast.get_docstring(ast.parse(parent.read_text()))
        assert re.search(rf"^\s*{re.escape(path.name)}\s+\S", doc, re.M), f"{name} is missing from the map in {parent}"
    top = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text()))
    for sub in (p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        assert re.search(rf"^\s+{sub.name}/\s+\S", top, re.M), f"subpackage {sub.name}/ is missing from the map"


def test_the_top_level_exports_resolve():
    for name in mmcourse.__all__:
        assert getattr(mmcourse, name) is not None, name
    with pytest.raises(AttributeError, match="the map"):
        mmcourse.no_such_thing


def _imports(path: Path) -> set[str]:
    """Every mmcourse module `path` imports, at the top or lazily inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmcourse"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mmcourse"))
    return found


def test_no_import_cycles_even_lazy_ones():
    known = modules()
    graph = {name: {m for m in _imports(path) if m in known and m != name and m != "mmcourse"}
             for name, path in known.items()}
    # a package's __init__ may re-export its own modules; those edges point down and cannot close a cycle
    graph = {name: {m for m in deps if not (known[name].name == "__init__.py" and m.startswith(name + "."))}
             for name, deps in graph.items()}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph[node]):
            dep_pkg = dep
            if state.get(dep_pkg) == "open":
                raise AssertionError("import cycle: " + " → ".join(stack + [node, dep_pkg]))
            if dep_pkg not in state:
                visit(dep_pkg, stack + [node])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_each_idea_is_written_once():
    """One attention layer, one block, one feed-forward layer, one projector, one masked mean, one image parser."""
    sources = {path: path.read_text() for path in PACKAGE.rglob("*.py")}
    # in the notebooks, outside the exercises' solutions (an exercise rebuilds an idea on purpose)
    solution = re.compile(r"### BEGIN SOLUTION.*?### END SOLUTION", re.S)
    sources.update({path: solution.sub("", "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                                                     if c["cell_type"] == "code")) for path in NOTEBOOKS})
    patterns = {
        "a Linear → GELU → Linear MLP": (r"nn\.Sequential\(\s*(?:torch\.)?nn\.Linear\([^)]*\),\s*(?:torch\.)?nn\.GELU\(\)",
                                          {"mmcourse/fusion/projector.py", "mmcourse/fusion/blocks.py"}),
        "a q/k/v projection layer": (r"self\.(?:q_proj|qkv)\s*=\s*nn\.Linear", {"mmcourse/fusion/attention.py"}),
        "a masked mean": (r"\.sum\(1\)\s*/\s*keep\.sum\(1\)|sum\(dim=1\)\s*/\s*counts", {"mmcourse/tokens.py"}),
        "a channels-first/last parser": (r"def _?(?:channels_first|as_chw|to_chw)\(", {"mmcourse/encoding/vision.py"}),
        "a neighbour-correlation helper": (r"def neighbour_correlation\(", {"mmcourse/probes.py"}),
        "a max-attention-weight helper": (r"def mean_max_weight\(", {"mmcourse/probes.py"}),
        "a timing helper": (r"def fastest_ms\(", {"mmcourse/runtime.py"}),
    }
    for idea, (pattern, homes) in patterns.items():
        where = {str(path.relative_to(ROOT)) for path, text in sources.items() if re.search(pattern, text)}
        assert where <= homes, f"{idea} is written in {sorted(where - homes)} as well as in {sorted(homes)}"


_FROM = re.compile(r"^\s*from (mmcourse[\w.]*) import \(?([\w ,\n]+?)\)?\s*(?:#.*)?$", re.M)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_notebooks_import_the_public_api_only(notebook):
    """`from X import name`: X is mmcourse, a subpackage or a module of the map, and name is public there."""
    code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
    code = re.sub(r"\(\s*\n", "(", code)
    for module, names in _FROM.findall(re.sub(r",\s*\n\s*", ", ", code)):
        depth = module.count(".")
        target = importlib.import_module(module)
        is_subpackage = depth == 1 and hasattr(target, "__path__")
        assert depth <= 1, f"{notebook.name}: `from {module} import …` reaches inside a subpackage; import from " \
                           f"{'.'.join(module.split('.')[:2])} instead"
        for name in (n.split(" as ")[0].strip() for n in names.split(",") if n.strip()):
            assert not name.startswith("_"), f"{notebook.name} imports the private {module}.{name}"
            if module == "mmcourse" or is_subpackage:
                assert name in target.__all__, f"{notebook.name} imports {module}.{name}, which it does not export"
            else:
                assert hasattr(target, name), f"{notebook.name} imports {module}.{name}, which does not exist"



def test_checks_sit_below_the_algorithm_they_guard():
    """A reader meets the algorithm first: a private `_check…` helper is defined after the first function that uses it."""
    late = []
    for name, path in modules().items():
        if set(name.split(".")[1:2]) & {"classroom", "drill"}:
            continue
        defs = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for i, d in enumerate(defs):
            if not d.name.startswith("_check"):
                continue
            users = [j for j, e in enumerate(defs) if e is not d
                     and any(isinstance(n, ast.Name) and n.id == d.name for n in ast.walk(e))]
            if users and min(users) > i:
                late.append(f"{name}.{d.name} (before {defs[min(users)].name})")
    assert not late, "move these checks below the code that calls them: " + ", ".join(late)
