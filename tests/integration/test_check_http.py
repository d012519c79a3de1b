"""`fido check` looks each HTTP enricher up once, over a real socket."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest
from tests.integration.http_server import FakeService, Reply, json_file

from fido._cli import main

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

KEY = "check-Key-never-printed-42"


def config(tmp_path: Path, service: FakeService) -> Path:
    path = tmp_path / "fido.toml"
    path.write_text(
        "[[enrichers]]\n"
        'type = "abuseipdb"\n'
        'api_key_env = "FIDO_TEST_ABUSEIPDB_KEY"\n'
        f'base_url = "{service.url("/api/v2/")}"\n'
        "verify = false\n"
        "max_attempts = 1\n"
    )
    return path


def check(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[dict[str, str]]]:
    monkeypatch.setenv("FIDO_TEST_ABUSEIPDB_KEY", KEY)
    out = io.StringIO()
    code = main(["check", str(path), "--json"], out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]  # one per row


def test_check_looks_a_probe_up_with_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeService() as service:
        service.route("GET", r"/api/v2/check", json_file("abuseipdb_check_reported.json"))
        code, rows = check(config(tmp_path, service), monkeypatch)
        assert code == 0
        (row,) = [r for r in rows if r["part"] == "enricher"]
        assert row["status"] == "ok"
        assert row["detail"].startswith("looked up ipv4:8.8.8.8 in ")
        (request,) = service.requests
        assert request.query["ipAddress"] == ["8.8.8.8"]
        assert request.headers["key"] == KEY


def test_a_refused_key_fails_the_check_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeService() as service:
        refused = {"errors": [{"detail": f"Authentication failed: {KEY}", "status": 401}]}
        service.route("GET", r"/api/v2/check", Reply(401, json.dumps(refused)))
        code, rows = check(config(tmp_path, service), monkeypatch)
    assert code == 1
    (row,) = [r for r in rows if r["part"] == "enricher"]
    assert row["status"] == "FAILED"
    assert "401" in row["detail"]
    assert KEY not in json.dumps(rows) + str(capsys.readouterr())


def test_a_wrong_base_url_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeService() as service:  # no route: every path answers the server's own 404
        code, rows = check(config(tmp_path, service), monkeypatch)
        (request,) = service.requests
    assert code == 1
    (row,) = [r for r in rows if r["part"] == "enricher"]
    assert row["status"] == "FAILED"
    assert "HTTP 404" in row["detail"]
    assert "is base_url right?" in row["detail"]
    assert request.path == "/api/v2/check"
