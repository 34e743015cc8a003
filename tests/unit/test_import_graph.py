"""The import graph of the runtime's packages: no circle between files, at
the top level or inside functions, and `specs/` (the OCI model) imports
nothing of the runtime that uses it.

A ratchet: the circles and the specs -> runtime imports that exist today
are listed below (issue #19 is to remove them, with the cgroups split and
`features` moving to the runtime side). A new one fails the test, and so
does a listed one that is gone, so the lists only shrink.

The graph is read from the source with `ast`, so an import inside a
function (the lazy imports of the hot paths) counts as much as one at the
top: a circle that only closes at run time is still a circle to a reader.
"""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("runsc_py", "sandbox", "gofer", "specs")


def _modules():
    """{dotted module name: path} of every source file of the packages."""
    out = {}
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


def _package_of(module, path):
    return module if path.endswith("__init__.py") else module.rpartition(".")[0]


def _resolve(module, path, node, known):
    """The modules of ours that an import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = _package_of(module, path)
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from pkg import name` imports the submodule pkg.name if there is one
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    out = set()
    for name in names:
        while name and name not in known:  # `import a.b.c`: the deepest module of ours
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def import_graph():
    known = _modules()
    graph = {}
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _resolve(module, path, node, known)
        graph[module] = edges
    return graph


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


KNOWN_CYCLES = [
    # v1/v2 stats readers take parse_cpu_list from the planner
    ["runsc_py.cgroups.resources", "runsc_py.cgroups.v1", "runsc_py.cgroups.v2"],
    # the systemd driver subclasses the cgroup object kept in the package
    ["runsc_py.cgroups", "runsc_py.cgroups.systemd"],
    # click's fallback parser shares the dispatcher's tables
    ["runsc_py.cli", "runsc_py.cli.clickcli"],
    ["sandbox.init", "sandbox.members", "sandbox.setup"],
]
KNOWN_SPECS_IMPORTS = {
    "specs.config": ["runsc_py.jsonio"],
    "specs.default": ["runsc_py.errors"],
    # the features document is the runtime describing itself
    "specs.features": ["runsc_py", "runsc_py.cgroups", "runsc_py.cgroups.devicefilter", "runsc_py.linux.mountopts",
                       "sandbox.confine", "sandbox.seccomp"],
}


def test_no_new_import_circle():
    cycles = _cycles(import_graph())
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in cycles] == [], "a listed circle is gone: remove it from the list"


def test_specs_import_nothing_new_of_the_runtime():
    graph = import_graph()
    offending = {m: sorted(t for t in edges if not t.startswith("specs"))
                 for m, edges in graph.items() if m.startswith("specs")}
    assert {m: t for m, t in offending.items() if t} == KNOWN_SPECS_IMPORTS
