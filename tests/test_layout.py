"""The repository's shape: the libraries stay free of the web stack, dependencies point one way (workers -> webapp
-> {counting, llm_reports}; edge -> counting; counting.training -> counting) with no import cycle, the web apps import
each other one way (APP_ORDER), share one layout and define no Celery task, the web process never loads torch, a
counting worker never loads the training code, and the Django project starts."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO

WEB_STACK = {"django", "rest_framework", "celery", "webapp", "workers"}


@pytest.mark.parametrize("library", ["counting", "edge", "llm_reports"])
def test_libraries_never_import_the_web_stack(library):
    offenders = []
    for path in (REPO / library).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(REPO)}: {name}" for name in names if name.split(".")[0] in WEB_STACK]
    assert offenders == []


def test_django_project_passes_its_checks():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_every_model_change_has_its_migration():
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The project's own packages: their import graph is checked for cycles.
PROJECT_PACKAGES = ("webapp", "workers", "counting", "edge", "llm_reports")
# Libraries the web process must never load: each costs hundreds of megabytes in every web worker.
HEAVY_LIBRARIES = ("torch", "torchvision", "transformers", "onnxruntime")


def project_modules() -> dict[str, Path]:
    """Every module of PROJECT_PACKAGES by dotted name (a package by its own name), with its file."""
    modules = {}
    for package in PROJECT_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names `module` imports anywhere in its file (at the top, inside functions, under TYPE_CHECKING):
    `from a.b import c` gives `a.b.c`, relative imports resolved."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            names |= {f"{source}.{alias.name}" for alias in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports (a name resolves to its longest module prefix)."""
    modules = project_modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        targets = {resolve(name) for name in imported_names(module, path)}
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as its modules in import order, the first repeated at the end; None when there is none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_web_side_never_imports_the_workers():
    """Dependencies point one way, workers -> webapp: the web side sends tasks by name (webapp.celery_app)."""
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for module, path in project_modules().items()
        if module.split(".")[0] == "webapp"
        for name in sorted(imported_names(module, path))
        if name.split(".")[0] == "workers"
    ]
    assert offenders == [], "the web side imports the workers:\n" + "\n".join(offenders)


def test_the_project_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": set()}
    assert find_cycle(graph) == ["b", "c", "b"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# Run in a fresh interpreter: what the web process loads to serve every URL of the URL configuration.
WEB_PROCESS_IMPORTS = """
import importlib, json, sys
import django
from django.urls import URLResolver, get_resolver

django.setup()
import webapp.urls

def view_modules(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from view_modules(pattern.url_patterns)
        else:
            yield pattern.callback.__module__

modules = sorted(set(view_modules(get_resolver().url_patterns)))
for module in modules:
    importlib.import_module(module)
print(json.dumps({"view_modules": modules, "loaded": sorted(sys.modules)}))
"""


def run_in_a_fresh_process(script: str, **environment: str) -> dict:
    """What `script`, run by a new Python with the project's settings, printed as JSON on its last line."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", **environment}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=environment, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_the_web_process_never_loads_torch_or_transformers():
    web_process = run_in_a_fresh_process(WEB_PROCESS_IMPORTS)
    assert "webapp.reports.views" in web_process["view_modules"], "the URL configuration was not walked"
    loaded = set(web_process["loaded"])
    assert [library for library in HEAVY_LIBRARIES if library in loaded] == []


# The command line (`python -m counting`) fronts both the library and its training; nothing else in the library may
# reach the training code or the gateway agent, by any import (inside functions too).
COMMAND_LINE = {"counting.cli", "counting.__main__"}
OUTSIDE_THE_LIBRARY = ("counting.training", "edge")


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules `start` imports, directly or through others."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        for target in graph[pending.pop()] - seen:
            seen.add(target)
            pending.append(target)
    return seen


def outside_the_library(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in OUTSIDE_THE_LIBRARY)


def test_the_counting_library_never_imports_its_training_or_the_gateway_agent():
    graph = import_graph()
    library = [
        module
        for module in graph
        if module.split(".")[0] == "counting" and not outside_the_library(module) and module not in COMMAND_LINE
    ]
    assert "counting.engine" in library and "counting.adaptation" in library
    offenders = [
        f"{module} -> {target}"
        for module in sorted(library)
        for target in sorted(reachable(graph, module))
        if outside_the_library(target)
    ]
    assert offenders == [], "the counting library reaches outside itself:\n" + "\n".join(offenders)


def test_reachable_follows_imports_through_other_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"b"}, "d": set()}
    assert reachable(graph, "a") == {"b", "c"}
    assert reachable(graph, "d") == set()


# Run in a fresh interpreter: a counting worker's process, its tasks imported and a frame counted by the engine its
# tasks use for a camera's default weights.
COUNTING_WORKER_IMPORTS = """
import json, sys
import django
import numpy as np

django.setup()
import workers.tasks
from counting.specs import DEFAULT_ARCH
from workers.engines import engine_for

counted = engine_for(DEFAULT_ARCH).count(np.full((96, 128, 3), 127, dtype=np.uint8))
print(json.dumps({"count": counted.count, "loaded": sorted(sys.modules)}))
"""


def test_a_counting_worker_never_loads_the_training_code():
    worker = run_in_a_fresh_process(COUNTING_WORKER_IMPORTS, COUNTING_THREADS="1")
    loaded = set(worker["loaded"])
    assert {"workers.tasks", "counting.engine", "torch"} <= loaded, "the worker's path was not taken"
    assert sorted(module for module in loaded if outside_the_library(module)) == []


# The web apps, lowest first (docs/development.md, "Apps one way"): an app imports only the apps before it, anywhere in
# its files (inside functions too). A lower app that must tell a higher one sends a signal from its events module
# (webapp.ingest.events, webapp.alerts.events) that the higher one connects in its ready().
APP_ORDER = (
    "cameras",
    "accounts",
    "ingest",
    "alerts",
    "notifications",
    "calibration",
    "health",
    "dashboard",
    "reports",
    "demo",
    "audit",
)
# The project's modules beside the apps (webapp/*.py): the base that any app may import, which imports no app; and the
# wiring (settings, URLs, WSGI), which imports any app and which no app imports.
BASE_MODULES = (
    "audit_records",
    "celery_app",
    "metric_events",
    "pagination",
    "period_query",
    "queues",
    "request_ids",
    "staticfinders",
    "staticstorage",
)
WIRING_MODULES = ("settings", "urls", "wsgi")


def webapp_part(module: str) -> str | None:
    """The app or project module of webapp that `module` belongs to (webapp.ingest.api -> ingest); None outside."""
    parts = module.split(".")
    return parts[1] if parts[0] == "webapp" and len(parts) > 1 else None


def imports_against_the_order(graph: dict[str, set[str]], order: tuple[str, ...], base: tuple[str, ...]) -> list[str]:
    """Each import of `graph` from a webapp app or base module that is not allowed: an app importing an app listed
    after it or the wiring, a base module importing any app or the wiring."""
    rank = {app: position for position, app in enumerate(order)}
    offenders = []
    for module in sorted(graph):
        source = webapp_part(module)
        if source not in rank and source not in base:
            continue
        for target in sorted(graph[module]):
            destination = webapp_part(target)
            if destination is None or destination == source or destination in base:
                continue
            if source in base or destination not in rank or rank[destination] > rank[source]:
                offenders.append(f"{module} -> {target}")
    return offenders


def test_every_part_of_webapp_is_placed():
    parts = {path.stem for path in (REPO / "webapp").glob("*.py") if path.stem != "__init__"}
    parts |= {path.parent.name for path in (REPO / "webapp").glob("*/__init__.py")}
    assert sorted(parts) == sorted({*APP_ORDER, *BASE_MODULES, *WIRING_MODULES})


def test_the_apps_import_each_other_one_way():
    offenders = imports_against_the_order(import_graph(), APP_ORDER, BASE_MODULES)
    assert offenders == [], "imports against APP_ORDER:\n" + "\n".join(offenders)


def test_imports_against_the_order_are_found():
    graph = {
        "webapp.low.models": set(),
        "webapp.high.views": {"webapp.low.models", "webapp.base"},
        "webapp.low.rules": {"webapp.high.views"},  # a lower app importing a higher one
        "webapp.base": {"webapp.low.models"},  # a base module importing an app
        "webapp.high.api": {"webapp.urls"},  # an app importing the wiring
        "webapp.urls": {"webapp.high.views"},
        "workers.tasks": {"webapp.high.views"},
    }
    assert imports_against_the_order(graph, ("low", "high"), ("base",)) == [
        "webapp.base -> webapp.low.models",
        "webapp.high.api -> webapp.urls",
        "webapp.low.rules -> webapp.high.views",
    ]


def celery_tasks_defined(source: str) -> list[str]:
    """The functions `source` makes Celery tasks of: decorated with `shared_task` or an app's `task`, called or not."""

    def makes_a_task(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            return target.id == "shared_task"
        return isinstance(target, ast.Attribute) and target.attr in {"task", "shared_task"}

    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(makes_a_task, node.decorator_list))
    ]


def test_the_web_apps_define_no_celery_task():
    """Every task is in workers/ (workers -> webapp); the web side sends them by name (webapp.queues)."""
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "webapp").rglob("tasks.py")]
    for path in (REPO / "webapp").rglob("*.py"):
        offenders += [f"{path.relative_to(REPO)}: {name}" for name in celery_tasks_defined(path.read_text())]
    assert offenders == [], "Celery tasks outside workers/:\n" + "\n".join(offenders)
    assert celery_tasks_defined((REPO / "workers" / "tasks.py").read_text()), "the finder finds none in workers/"


def test_a_celery_task_is_found_however_it_is_declared():
    source = """
@shared_task
def one(): ...
@app.task(bind=True)
def two(self): ...
@celery.shared_task()
async def three(): ...
@functools.cache
def plain(): ...
"""
    assert celery_tasks_defined(source) == ["one", "two", "three"]


# One layout for every app: pages in views.py, routed by urls.py; the REST API in api.py, routed by api_urls.py under
# /api/v1/. The project's own routes are Django's admin and sign-in, the OIDC callbacks and the API's description.
PROJECT_VIEW_MODULES = ("django.", "drf_spectacular.", "webapp.accounts.oidc")


def url_patterns(patterns, prefix: str = "") -> list[tuple[str, str]]:
    """(route, the module of its view) for each pattern under `patterns`, included ones too."""
    from django.urls import URLResolver

    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            view = getattr(pattern.callback, "view_class", pattern.callback)
            found.append((prefix + str(pattern.pattern), view.__module__))
    return found


def test_pages_come_from_views_and_the_api_from_api():
    from django.urls import get_resolver

    offenders = []
    for route, module in url_patterns(get_resolver().url_patterns):
        if module.startswith(PROJECT_VIEW_MODULES) or route.startswith("admin/"):
            continue
        expected = "api" if route.startswith("api/v1/") else "views"
        parts = module.split(".")
        # An app's API past a few hundred lines is an `api` package, a module per part (calibration's).
        if parts[0] != "webapp" or parts[2:3] != [expected] or (expected == "views" and len(parts) > 3):
            offenders.append(f"{route}: {module}")
    served = "routes not served by the app's views.py (pages) or its api.py or api/ package (API):\n"
    assert offenders == [], served + "\n".join(offenders)
