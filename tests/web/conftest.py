"""Fixtures for web tests: an app on the test's installation, and a school of people."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from esafety.installation import Installation
from esafety.web.app import create_app
from tests.accounts import TestSchool, make_school


@pytest.fixture
def school(inst: Installation) -> TestSchool:
    """A school with one person per role, each with a password (and two-step if needed)."""
    return make_school(inst)


@pytest.fixture
def app(inst: Installation) -> FastAPI:
    return create_app(inst)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
