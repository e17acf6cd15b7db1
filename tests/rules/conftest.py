"""Fixtures shared by the rule page tests."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def client(db) -> Client:
    """A logged-in trader (pytest-django's ``client`` is anonymous)."""
    user = get_user_model().objects.create_user("trader", "", "s3cret-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client
