"""docs/openapi.yaml names every route the app registers and is what scripts/openapi.py writes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml
from aiohttp import web

from livecommerce.app import create_app
from livecommerce.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("openapi_generator", ROOT / "scripts" / "openapi.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _registered_routes(tmp_path: Path) -> set[tuple[str, str]]:
    settings = Settings(
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        data_dir=tmp_path,
        secret_key="test-secret-key-" + "x" * 32,
        port=0,
    )
    routes = set()
    for route in create_app(settings).router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD to every GET
            continue
        resource = route.resource
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        routes.add((route.method.lower(), path))
    return routes


def test_spec_lists_exactly_the_registered_routes(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    registered = _registered_routes(tmp_path)
    assert registered - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - registered == set(), "docs/openapi.yaml names routes the app does not have"


def test_committed_spec_is_what_the_generator_writes() -> None:
    generator = _generator()
    assert (ROOT / "docs" / "openapi.yaml").read_text() == generator.render(), (
        "docs/openapi.yaml is out of date: run python scripts/openapi.py"
    )


def test_every_error_answer_has_the_error_shape() -> None:
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    for status, response in spec["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, status
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
