"""The package's shape: no import cycle anywhere in seed/ or flows/ (the layers are import-linter's job)."""

from __future__ import annotations

import grimp


def import_graph() -> dict[str, set[str]]:
    """Every import between modules of seed and flows, top-level, function-local and TYPE_CHECKING."""
    graph = grimp.build_graph("seed", "flows", cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycles_finds_a_hand_made_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(edges) == [["a", "b", "c"]]


def test_no_import_cycle_in_seed_or_flows():
    edges = import_graph()
    assert "seed.stages.purify" in edges and "seed.model.teacher" in edges["seed.stages.purify"]
    assert cycles(edges) == []


def test_no_module_over_400_lines():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    lengths = {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for package in ("seed", "flows")
        for path in (root / package).rglob("*.py")
    }
    assert len(lengths) > 50
    assert {name: n for name, n in lengths.items() if n > 400} == {}
