"""The PHP oracle, started once per session (the whole corpus is one batch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.oracle import Oracle


@pytest.fixture(scope="session")
def oracle() -> Iterator[Oracle]:
    try:
        twig = Oracle()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield twig
    twig.close()
