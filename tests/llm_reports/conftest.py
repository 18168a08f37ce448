import pytest

from llm_reports.llm import LocalLLM


@pytest.fixture(scope="session")
def llm() -> LocalLLM:
    """The default model (SmolLM2-135M-Instruct from its local GGUF), loaded once for every test that needs it."""
    return LocalLLM()
