"""The bar store's admin: read-only, filters by symbol and size, never counts the table."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bars.models import StoredBar
from bars.services import bars_store
from engine.core.bars import Bar

pytestmark = pytest.mark.django_db

T0 = 1_765_895_400
URL = "/admin/bars/storedbar/"


def test_admin_lists_and_filters_without_counting_the_table(admin_client):
    bars_store(Bar("AAPL", T0 + 5 * i, 5, 1, 2, 0.5, 1.5, 9) for i in range(120))
    bars_store(Bar("MSFT", T0 + 60 * i, 60, 1, 2, 0.5, 1.5, 9) for i in range(3))
    with CaptureQueriesContext(connection) as queries:
        resp = admin_client.get(URL)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "2025-12-16 14:39:55" in html  # the newest AAPL bar's start, in UTC
    assert "?symbol=MSFT" in html and "?seconds=60" in html
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert "DISTINCT" not in " ".join(q["sql"].upper() for q in queries.captured_queries)

    resp = admin_client.get(URL + "?symbol=MSFT&seconds=60")
    assert resp.status_code == 200
    assert len(resp.context["cl"].result_list) == 3
    # page two of AAPL's 120 bars (100 a page)
    resp = admin_client.get(URL + "?symbol=AAPL&p=2")
    assert len(resp.context["cl"].result_list) == 20
    for bad in ("?seconds=%C2%B2", "?seconds=" + "9" * 5000, "?symbol=AA%00PL"):
        resp = admin_client.get(URL + bad)
        assert resp.status_code == 200, bad
        assert len(resp.context["cl"].result_list) == 0


def test_admin_is_read_only(admin_client):
    bars_store([Bar("AAPL", T0, 5, 1, 2, 0.5, 1.5, 9)])
    assert admin_client.get(URL + "add/").status_code == 403
    pk = StoredBar.objects.get().pk
    assert admin_client.post(URL + f"{pk}/delete/", {"post": "yes"}).status_code == 403
    assert StoredBar.objects.count() == 1
