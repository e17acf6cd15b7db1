"""Fixtures shared by the rule page tests."""

import pytest
from django.test import Client

from tests.factories import logged_in_client


@pytest.fixture
def client(db) -> Client:
    """A logged-in trader (pytest-django's ``client`` is anonymous)."""
    return logged_in_client()
