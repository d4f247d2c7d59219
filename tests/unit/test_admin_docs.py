"""/docs and /redoc work without internet: every script, stylesheet, icon and the schema they
reference is served by the admin app itself (fastapi-offline's Swagger UI and ReDoc)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from connectors.admin import create_app
from tests.unit.test_console_web import FakeContext

# src="…", href="…" and the schema's url: '…' (Swagger UI) or spec-url="…" (ReDoc)
REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize(("page", "kinds"), [
    ("/docs", ("swagger-ui-bundle.js", "swagger-ui.css", "/openapi.json")),
    ("/redoc", ("redoc.standalone.js", "/openapi.json")),
])
def test_docs_load_every_asset_from_the_app(tmp_path: Path, page: str,
                                            kinds: tuple[str, ...]) -> None:
    ctx = FakeContext(create_engine(f"sqlite:///{tmp_path / 'log.db'}"))
    client = TestClient(create_app(ctx, {}), base_url="http://admin.test")  # type: ignore[arg-type]
    html = client.get(page)
    assert html.status_code == 200
    references = [a or b for a, b in REFERENCE.findall(html.text)]
    for kind in kinds:  # what the page needs to draw anything
        assert any(r.endswith(kind) for r in references), (kind, references)
    for reference in references:
        parts = urlsplit(reference)
        assert not parts.scheme and not parts.netloc, f"{page} loads {reference} from elsewhere"
        asset = client.get(reference)
        assert asset.status_code == 200 and asset.content, reference
    assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
