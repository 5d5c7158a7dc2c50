"""The import layers of the service: every import goes down, and no import goes round in a cycle.

The graph is grimp's (the engine of import-linter) over ``config``, ``stayy``, ``users`` and
``upstream_demo``, migrations left out. Imports under ``if TYPE_CHECKING:`` count like any
other: a type named in a signature ties two modules together as much as a call does.

The rules (docs/layout.md says the same in words):

* Apps: config's entry points (``urls``, ``wsgi``, ``asgi``) → the domain (``users``; the
  demo upstream stands apart) → the job runtime (``stayy``) → config's support modules
  (``settings``, ``env``, ``permissions``, ``errors``, ``openapi``). The runtime never imports
  the domain.
* ``stayy``: its interfaces (API, admin, commands, its own job, app config, the runtime inside
  a serving process, the HTTP side of observability) → ``services`` → ``scheduling`` (the job
  framework) → ``repository`` and the metrics and log plumbing → models and settings.
* ``users``: views, admin, jobs, commands and their DRF helpers → ``services`` →
  ``repository`` → models and settings.
* Views and the admin of both apps reach I/O and the job catalog through ``stayy.services``:
  they import no repository and, of the job framework, only the pure schedule functions of
  ``stayy.scheduling.triggers``.

A layer may import any layer below it, and a layer of several modules may import among them
unless it is marked independent. Every module sits in exactly one layer (a package's own
``__init__`` that imports nothing may hold layers instead), so a new module fails here until
it is placed.

Around the service, the scripts, the benchmarks and the harness they share with the tests never
import the tests package, nor name one of its modules as a dotted path (a settings module): what
they share with the tests lives in ``harness``. That check reads their sources (``scripts`` is no
package).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import grimp
import pytest
from grimp import Layer

PACKAGES = ("config", "stayy", "users", "upstream_demo")
PROJECT_DIR = Path(__file__).resolve().parents[1]
#: Folders of development tooling that must stand without the tests.
TOOLING = ("scripts", "bench", "harness")

APP_LAYERS: list[Layer | str] = [
    Layer("config.urls", "config.wsgi", "config.asgi", independent=False),
    Layer("users", "upstream_demo"),
    "stayy",
    Layer(
        "config.settings", "config.env", "config.permissions", "config.errors", "config.openapi",
        "config.pagination",
        independent=False,
    ),
]  # fmt: skip

STAYY_LAYERS: list[Layer | str] = [
    Layer(
        "stayy.api", "stayy.admin", "stayy.management", "stayy.jobs", "stayy.apps", "stayy.runtime",
        "stayy.observability.views", "stayy.observability.middleware", "stayy.observability.probes",
        independent=False,
    ),
    "stayy.services",
    "stayy.scheduling",
    Layer(
        "stayy.repository", "stayy.observability.metrics", "stayy.observability.logcontext",
        "stayy.observability.logformat",
    ),
    Layer("stayy.models", "stayy.conf", "stayy.migration_operations"),
]  # fmt: skip

USERS_LAYERS: list[Layer | str] = [
    Layer(
        "users.views", "users.urls", "users.admin", "users.jobs", "users.management", "users.apps",
        "users.serializers", "users.filters", "users.pagination", "users.lockout", "users.signals",
        independent=False,
    ),
    "users.services",
    "users.repository",
    Layer("users.models", "users.conf", "users.pacing"),
]  # fmt: skip

#: Modules that reach the runtime only through ``stayy.services``, and what they may not import.
THROUGH_SERVICES = (
    ("stayy.api", "stayy.admin", "users.views", "users.admin"),
    ("stayy.repository", "users.repository", "stayy.scheduling"),
    ("stayy.scheduling.triggers",),  # allowed: a stored schedule back into words, no state
)


def build_graph() -> grimp.ImportGraph:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    for module in list(graph.modules):
        if ".migrations" in module:
            graph.remove_module(module)
    return graph


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return build_graph()


# --- the checks ---------------------------------------------------------------------------------


def _names(layers: Sequence[Layer | str]) -> list[str]:
    return [name for layer in layers for name in ([layer] if isinstance(layer, str) else layer.module_tails)]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def upward_imports(graph: grimp.ImportGraph, layers: Sequence[Layer | str]) -> list[str]:
    """Each chain of imports that goes from a lower layer up to a higher one (or between
    independent siblings), as ``a -> b -> c``."""
    problems = []
    for dependency in graph.find_illegal_dependencies_for_layers(layers=layers):
        for route in dependency.routes:
            for head in sorted(route.heads):
                for tail in sorted(route.tails):
                    chain = " -> ".join([head, *route.middle, tail])
                    problems.append(f"{dependency.importer} must not import {dependency.imported}: {chain}")
    return sorted(problems)


def cycles(graph: grimp.ImportGraph) -> list[str]:
    """Each import cycle once, as ``a -> b -> a`` starting from its smallest module."""
    found: dict[frozenset[str], str] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is None:
                continue
            loop = [importer, *back]
            key = frozenset(loop)
            if key not in found:
                start = loop.index(min(loop[:-1]))
                found[key] = " -> ".join([*loop[start:-1], *loop[:start], loop[start]])
    return sorted(found.values())


def forbidden_imports(
    graph: grimp.ImportGraph,
    importers: Iterable[str],
    forbidden: Iterable[str],
    allowed: Iterable[str] = (),
) -> list[str]:
    """Direct imports from a module of ``importers`` into one of ``forbidden`` (save ``allowed``)."""
    problems = []
    for importer in sorted(m for m in graph.modules if any(_within(m, p) for p in importers)):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if any(_within(imported, p) for p in forbidden) and not any(
                _within(imported, p) for p in allowed
            ):
                problems.append(f"{importer} imports {imported}")
    return problems


def unplaced(graph: grimp.ImportGraph, layers: Sequence[Layer | str], package: str) -> list[str]:
    """Modules of ``package`` in no layer, and layer names that match no module."""
    names = _names(layers)
    problems = [f"layer {name} matches no module" for name in names if name not in graph.modules]
    for module in sorted(m for m in graph.modules if _within(m, package)):
        if any(_within(module, name) for name in names):
            continue
        holds_layers = any(_within(name, module) for name in names)
        if holds_layers and not graph.find_modules_directly_imported_by(module):
            continue
        problems.append(f"{module} is in no layer")
    return problems


def imports_of_the_tests(source: str, filename: str) -> list[str]:
    """Where ``source`` imports the ``tests`` package or names one of its modules as a dotted string
    (a settings module, an argument of ``import_module``), as ``file:line name``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if re.fullmatch(r"tests(\.\w+)+", node.value) else []
        found += [(node.lineno, name) for name in names if _within(name, "tests")]
    return [f"{filename}:{line} {name}" for line, name in sorted(found)]


# --- the service's imports -------------------------------------------------------------------------


def test_every_module_sits_in_one_layer(graph: grimp.ImportGraph) -> None:
    problems = unplaced(graph, STAYY_LAYERS, "stayy") + unplaced(graph, USERS_LAYERS, "users")
    problems += unplaced(graph, APP_LAYERS, "config") + unplaced(graph, APP_LAYERS, "upstream_demo")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("layers", [APP_LAYERS, STAYY_LAYERS, USERS_LAYERS], ids=["apps", "stayy", "users"])
def test_imports_go_down_the_layers(graph: grimp.ImportGraph, layers: list[Layer | str]) -> None:
    problems = upward_imports(graph, layers)
    assert not problems, "imports going up:\n" + "\n".join(problems)


def test_views_and_admin_reach_the_runtime_through_services(graph: grimp.ImportGraph) -> None:
    problems = forbidden_imports(graph, *THROUGH_SERVICES)
    assert not problems, "\n".join(problems)


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(found)


# --- the tooling around the service ---------------------------------------------------------------


def test_scripts_benchmarks_and_the_harness_never_import_the_tests() -> None:
    sources = [path for folder in TOOLING for path in sorted((PROJECT_DIR / folder).rglob("*.py"))]
    assert PROJECT_DIR / "scripts" / "faults.py" in sources  # the walk found the tooling at all
    problems = []
    for path in sources:
        problems += imports_of_the_tests(path.read_text(), str(path.relative_to(PROJECT_DIR)))
    assert not problems, "move what these need from tests/ to harness/:\n" + "\n".join(problems)


# --- the checks themselves, on a graph made up here -------------------------------------------------


def synthetic_graph(imports: list[tuple[str, str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    return graph


def test_the_checks_name_an_upward_import_and_a_cycle() -> None:
    graph = synthetic_graph(
        [
            ("app.views", "app.services"),
            ("app.services", "app.repository"),
            ("app.repository", "app.helpers"),
            ("app.helpers", "app.views"),  # up from the bottom, through a module of no layer
            ("app.admin", "app.repository"),  # past the services
        ]
    )
    layers: list[Layer | str] = [Layer("app.views", "app.admin"), "app.services", "app.repository"]

    assert upward_imports(graph, layers) == [
        "app.repository must not import app.views: app.repository -> app.helpers -> app.views"
    ]
    assert cycles(graph) == ["app.helpers -> app.views -> app.services -> app.repository -> app.helpers"]
    assert forbidden_imports(graph, ["app.admin", "app.views"], ["app.repository"]) == [
        "app.admin imports app.repository"
    ]
    assert unplaced(graph, [*layers, "app.models"], "app") == [
        "layer app.models matches no module",
        "app.helpers is in no layer",
    ]


def test_the_checks_pass_a_graph_that_keeps_the_rules() -> None:
    graph = synthetic_graph(
        [("app.views", "app.services"), ("app.services", "app.repository"), ("app.admin", "app.services")]
    )
    layers: list[Layer | str] = [Layer("app.views", "app.admin"), "app.services", "app.repository"]

    assert upward_imports(graph, layers) == []
    assert cycles(graph) == []
    assert forbidden_imports(graph, ["app.admin", "app.views"], ["app.repository"]) == []
    assert unplaced(graph, layers, "app") == []


def test_the_tooling_check_names_imports_of_the_tests_and_their_dotted_paths() -> None:
    source = (
        "import os, tests.support\n"
        "from tests.faults import rig\n"
        "from testsuite import helpers\n"
        "from . import sibling\n"
        "SETTINGS = 'tests.cluster.settings'\n"
        "DOC = 'the short runs are in tests/faults/'\n"
    )
    assert imports_of_the_tests(source, "x.py") == [
        "x.py:1 tests.support",
        "x.py:2 tests.faults",
        "x.py:5 tests.cluster.settings",
    ]
    assert imports_of_the_tests("import testsuite\nfrom harness import ports\n", "y.py") == []
