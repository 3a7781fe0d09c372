"""Layers that only point down: the import graph of fadepth/ (every ``import fadepth...`` / ``from fadepth...``,
relative ones too, at module level and inside functions, read with ``ast``; nothing is imported).

A *room* is a top-level module (``fadepth/checkpoint.py``) or a sub-package (``fadepth/sweep/``); a room's floor
is one above the highest room it imports.  The tests fail on any import that runs up (a circle of rooms), on a
circle of files other than the accepted one (the model registry <-> the model files inside fadepth/models/,
timm's pattern), on the specific upward arrows that issue 24 removed, and on a private name used across files.

``python tests/test_layers.py [FADEPTH_DIR]`` prints the floors, the circles and the largest files.
"""
from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fadepth"
ACCEPTED_HOME, ACCEPTED_HUB = "fadepth.models.", "fadepth.models.registry"  # the registry <-> model files
FORBIDDEN = {  # (importer room, imported room): the arrows issue 24 turned round
    ("fadepth.sweep", "fadepth.cli"): "the error boundary lives in fadepth.errors",
    ("fadepth.sweep", "fadepth.report"): "the depth panel lives in fadepth.visual",
    ("fadepth.checkpoint", "fadepth.models"): "rebuilding a model from a checkpoint is fadepth.models.load_model",
}
GROUND = ("fadepth.errors",)  # import nothing of fadepth, so that every layer may use them
TOP = ("fadepth.cli", "fadepth.__main__")  # nothing else imports them


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=4)
def parsed(root: Path = PACKAGE) -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p, root): (p, ast.parse(p.read_text(), str(p))) for p in sorted(root.rglob("*.py"))}


def imported_names(module: str, path: Path, tree: ast.Module, modules) -> list[tuple[str, str, str, int]]:
    """(module imported, name taken from it or "" for the module itself, local name, line) for every fadepth
    import of one file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", a.asname or a.name.split(".")[0], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                sub = f"{source}.{a.name}"
                found.append((sub, "", a.asname or a.name, node.lineno) if sub in modules
                             else (source, a.name, a.asname or a.name, node.lineno))
    return [entry for entry in found if entry[0].split(".")[0] == "fadepth"]


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """File -> {file it imports: first line}; ``fadepth.a.b`` resolves to the deepest existing module."""
    files = parsed(root)
    graph: dict[str, dict[str, int]] = {}
    for module, (path, tree) in files.items():
        edges = graph.setdefault(module, {})
        for name, _, _, line in imported_names(module, path, tree, files):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.setdefault(name, line)
    return graph


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def room_graph(graph: dict[str, dict[str, int]]) -> dict[str, dict[str, list[str]]]:
    """Room -> {room it imports: ["file -> file:line", ...]}."""
    rooms: dict[str, dict[str, list[str]]] = {room(m): {} for m in graph}
    for module, edges in graph.items():
        for target, line in edges.items():
            if room(target) != room(module):
                rooms[room(module)].setdefault(room(target), []).append(f"{module} -> {target} (line {line})")
    return rooms


def circles(graph) -> list[list[str]]:
    """Strongly connected components, sinks first (Tarjan, iterative); one of more than one node is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def accepted(component: list[str]) -> bool:
    return ACCEPTED_HUB in component and all(m.startswith(ACCEPTED_HOME) for m in component)


def floors(rooms) -> dict[str, int]:
    """Each room's floor: 0 for a room that imports no other room, else one above the highest it imports
    (the rooms of a circle share one floor)."""
    components = circles(rooms)  # sinks first: what a component imports has its floor already
    of = {r: i for i, component in enumerate(components) for r in component}
    floor: list[int] = []
    for i, component in enumerate(components):
        floor.append(1 + max((floor[of[t]] for r in component for t in rooms[r] if of[t] != i), default=-1))
    return {r: floor[of[r]] for r in rooms}


def upward_imports(rooms) -> list[str]:
    """Imports between rooms of one circle: with floors, one of them runs up."""
    found = []
    for component in circles(rooms):
        for a in component:
            for b in component:
                found += rooms[a].get(b, [])
    return found


def private_crossings(root: Path = PACKAGE) -> list[str]:
    """``from fadepth.x import _name`` or ``x._name`` on an imported fadepth module, in another file."""
    files = parsed(root)
    found = []
    for module, (path, tree) in files.items():
        imports = imported_names(module, path, tree, files)
        found += [f"{module}:{line} imports {name}.{what}" for name, what, _, line in imports
                  if what.startswith("_") and not what.startswith("__")]
        aliases = {local for _, what, local, _ in imports if not what}  # names bound to a fadepth module
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


# ----------------------------------------------------------------------------------- tests
def test_no_circle_of_files_but_the_model_registry():
    graph = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the graph was read
    bad = [c for c in circles(graph) if len(c) > 1 and not accepted(c)]
    assert not bad, f"import circles: {bad}"


def test_no_import_runs_up():
    rooms = room_graph(import_graph())
    assert not upward_imports(rooms), "imports in a circle of rooms:\n" + "\n".join(upward_imports(rooms))


def test_the_arrows_issue_24_turned_round_stay_down():
    rooms = room_graph(import_graph())
    bad = [f"{why}: {edge}" for (a, b), why in FORBIDDEN.items() for edge in rooms[a].get(b, [])]
    bad += [f"{g} is the ground floor: {edge}" for g in GROUND for edges in rooms[g].values() for edge in edges]
    bad += [f"{t} is the top: {edge}" for r, edges in rooms.items() if r not in TOP
            for t in TOP for edge in edges.get(t, [])]
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_files():
    assert not private_crossings(), "\n".join(private_crossings())


def test_the_checker_sees_an_upward_arrow_and_a_circle(tmp_path):
    package = tmp_path / "fadepth"
    (package / "sweep").mkdir(parents=True)
    (package / "cli").mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("from fadepth.sweep import launcher\n")
    (package / "sweep" / "__init__.py").write_text("")
    (package / "sweep" / "launcher.py").write_text("def f():\n    from fadepth.cli import guarded\n")
    (package / "sweep" / "slurm.py").write_text("from . import launcher\nlauncher._update_bar\n")
    (package / "sweep" / "plan.py").write_text("from .slurm import x\n")
    (package / "sweep" / "extra.py").write_text("from .launcher import _bar\n")
    graph = import_graph(package)
    assert graph["fadepth.sweep.launcher"] == {"fadepth.cli": 2}
    assert graph["fadepth.sweep.plan"] == {"fadepth.sweep.slurm": 1}
    assert [c for c in circles(graph) if len(c) > 1] == [["fadepth.cli", "fadepth.sweep.launcher"]]
    rooms = room_graph(graph)
    assert upward_imports(rooms) and floors(rooms)["fadepth.cli"] == floors(rooms)["fadepth.sweep"]
    assert sorted(private_crossings(package)) == ["fadepth.sweep.extra:1 imports fadepth.sweep.launcher._bar",
                                                  "fadepth.sweep.slurm:2 uses launcher._update_bar"]


# ----------------------------------------------------------------------------------- report
def report(root: Path = PACKAGE) -> None:
    graph = import_graph(root)
    rooms = room_graph(graph)
    print(f"{len(graph)} files, {sum(map(len, graph.values()))} imports, {len(rooms)} rooms")
    by_floor: dict[int, list[str]] = {}
    for r, f in floors(rooms).items():
        by_floor.setdefault(f, []).append(r.removeprefix("fadepth.") if r != "fadepth" else "fadepth/__init__")
    for f in sorted(by_floor):
        print(f"  floor {f}: {', '.join(sorted(by_floor[f]))}")
    up = upward_imports(rooms)
    print(f"imports that run up: {len(up)}" + "".join(f"\n  {e}" for e in up))
    file_circles = [c for c in circles(graph) if len(c) > 1]
    print(f"circles of files: {len(file_circles)}")
    for c in file_circles:
        print(f"  {'(accepted) ' if accepted(c) else ''}{' <-> '.join(c)}")
    private = private_crossings(root)
    print(f"private names across files: {len(private)}" + "".join(f"\n  {p}" for p in private))
    sizes = sorted(((len(p.read_text().splitlines()), p.relative_to(root.parent)) for p, _ in parsed(root).values()),
                   reverse=True)
    print("largest files: " + ", ".join(f"{p} {n}" for n, p in sizes[:3]))


if __name__ == "__main__":
    report(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else PACKAGE)
