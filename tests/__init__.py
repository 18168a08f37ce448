"""The project's tests. REPO is the repository's root, for tests that read its files or run its commands."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
