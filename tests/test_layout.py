"""The repository's shape: the libraries stay free of the web stack, dependencies point one way (workers -> webapp
-> {counting, llm_reports}; edge -> counting; counting.training -> counting) with no import cycle, the web process never
loads torch, a counting worker never loads the training code, and the Django project starts."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

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


def test_the_web_process_never_loads_torch_or_transformers():
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings"}
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS_IMPORTS],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    web_process = json.loads(result.stdout.splitlines()[-1])
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
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "COUNTING_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_WORKER_IMPORTS],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    worker = json.loads(result.stdout.splitlines()[-1])
    loaded = set(worker["loaded"])
    assert {"workers.tasks", "counting.engine", "torch"} <= loaded, "the worker's path was not taken"
    assert sorted(module for module in loaded if outside_the_library(module)) == []
