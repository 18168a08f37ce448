import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("CROWDSCOPE_DATA", REPO.parent / "shared" / "data"))
    if not (path / "shanghaitech").is_dir():
        pytest.fail(f"the shared data folder is missing at {path}; set CROWDSCOPE_DATA")
    return path


@pytest.fixture(scope="session")
def shanghaitech(shared_data: Path) -> Path:
    return shared_data / "shanghaitech"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ground-truth caches written by tests go to a temporary folder, never into the repository."""
    monkeypatch.setenv("CROWDSCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
