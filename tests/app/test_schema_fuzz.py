"""Schemathesis against the live OpenAPI document: no 5xx, and every response matches the schema.

Bounded for CI (a few examples per operation); `schemathesis run URL/openapi.json -n 500` is the long run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.skipif(
    shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None, reason="schemathesis is not installed"
)
def test_generated_requests_never_get_a_5xx_and_match_the_schema(server: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{server}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--generation-deterministic",
        "--report-dir",
        str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
