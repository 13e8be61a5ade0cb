"""The shape of the package: the import graph of every module of ``explorer`` (deferred imports inside
functions included, read from the source with ``ast``), and the size of its modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "explorer"
GUI_PACKAGES = ("panel", "param", "bokeh", "holoviews")
#: Most lines of a library module (everything outside explorer/ui/).
LIBRARY_LIMIT = 500
#: Most lines of a ui module, and of a view (``*_view.py``). Set ``UI_LIMITS_ENFORCED`` once the views
#: are reworked: the two checks then stop being expected failures.
UI_LIMIT, VIEW_LIMIT = 500, 400
UI_LIMITS_ENFORCED = True


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every module ``name`` imports, anywhere in its source (absolute names; ``from a import b`` gives
    ``a.b`` when that is a module of the package, else ``a``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            out |= subs or {target}
            if subs and target in MODULES and len(subs) < len(node.names):
                out.add(target)
    return out


GRAPH = {name: {m for m in imports_of(name) if m in MODULES and m != name} for name in MODULES}
EXTERNAL = {name: {m.split(".")[0] for m in imports_of(name)} for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a closed path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def is_ui(name: str) -> bool:
    return name == "explorer.ui" or name.startswith("explorer.ui.")


def lines(name: str) -> int:
    return len(MODULES[name].read_text().splitlines())


def test_the_graph_sees_the_package_and_deferred_imports():
    assert "explorer.jacobian" in MODULES and "explorer.ui" in MODULES
    assert "explorer.distributed" in GRAPH["explorer.evaluate"]  # the CLI's import inside main's helper
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_explorer_modules():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_no_view_imports_another_view():
    def is_view(name: str) -> bool:
        return is_ui(name) and name.rpartition(".")[2].endswith("_view")

    bad = {name: sorted(m for m in deps if is_view(m)) for name, deps in GRAPH.items() if is_view(name)}
    assert not {k: v for k, v in bad.items() if v}


def test_the_library_does_not_import_the_gui_toolkits():
    bad = {name: sorted(EXTERNAL[name] & set(GUI_PACKAGES)) for name in MODULES if not is_ui(name)}
    assert not {k: v for k, v in bad.items() if v}


def test_library_modules_are_at_most_500_lines():
    big = {name: lines(name) for name in MODULES if not is_ui(name) and lines(name) > LIBRARY_LIMIT}
    assert not big


ui_xfail = pytest.mark.xfail(not UI_LIMITS_ENFORCED, reason="views are being reworked", strict=False)


@ui_xfail
def test_ui_modules_are_at_most_500_lines():
    big = {name: lines(name) for name in MODULES if is_ui(name) and lines(name) > UI_LIMIT}
    assert not big


@ui_xfail
def test_views_are_at_most_400_lines():
    big = {name: lines(name) for name in MODULES
           if is_ui(name) and name.endswith("_view") and lines(name) > VIEW_LIMIT}
    assert not big
