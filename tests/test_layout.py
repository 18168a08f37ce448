"""The repository's shape: the libraries stay free of the web stack, and the Django project starts."""

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

WEB_STACK = {"django", "rest_framework", "celery", "webapp", "workers"}


@pytest.mark.parametrize("library", ["counting", "llm_reports"])
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
