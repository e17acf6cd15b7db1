"""The Alerts page: destinations (add, edit, Send test, enable/disable, remove), their health,
the delivery log (polled by htmx), and the dashboard's "keeps failing" warning. Every change
goes through ``alerts.services``; "Send test" through ``alerts.sender.send_test``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import sender, services
from alerts.forms import SIDE_CHOICES, DestinationForm
from alerts.models import TELEGRAM_API, Delivery, Destination
from rules.models import Rule
from scalpsite.ui import is_htmx

PAGE = "alerts/list.html"
EDIT = "alerts/edit.html"
LOG_ROWS = 100
LOG_POLL_SECONDS = 3


@dataclass
class Card:
    """One destination as the page shows it, with what the last action left behind."""

    destination: Destination
    url_shown: str
    secret_shown: str
    filters: str
    failing: bool
    outcome: str = ""  # "Delivered: HTTP 200 in 12 ms" / "Failed: …" after Send test
    outcome_ok: bool = False
    notice: str = ""


def _rule_names() -> dict[int, str]:
    return dict(Rule.objects.values_list("pk", "name"))


def _card(destination: Destination, rule_names: dict[int, str] | None = None, **extra) -> Card:
    return Card(
        destination=destination,
        url_shown=services.url_masked(destination),
        secret_shown=services.secret_masked(destination.secret),
        filters=destination.filters_text(_rule_names() if rule_names is None else rule_names),
        failing=destination.enabled and destination.failures_in_row >= services.FAILING_AFTER,
        **extra,
    )


def _log_filters(params) -> dict:
    """The log's filters from the query string; anything unreadable means "all"."""
    raw = str(params.get("destination", ""))[:12]
    destination_id = int(raw) if raw.isascii() and raw.isdigit() else None
    status = str(params.get("status", ""))[:12]
    if status not in Delivery.Status.values:
        status = ""
    return {"destination": destination_id, "status": status}


def _log_context(filters: dict) -> dict:
    rows = services.deliveries_log(
        destination_ids=None if filters["destination"] is None else [filters["destination"]],
        status=filters["status"] or None,
        limit=LOG_ROWS,
    )
    query = {k: v for k, v in filters.items() if v not in (None, "")}
    return {
        "log_rows": rows,
        "log_filters": filters,
        "log_query": urlencode(query),
        "log_poll_seconds": LOG_POLL_SECONDS,
        "statuses": Delivery.Status.choices,
    }


def _form_context(form: DestinationForm) -> dict:
    """What the Add/Edit form is drawn with (the stored secrets only masked)."""
    stored = form.destination
    return {
        "form": form,
        "placeholders_text": ", ".join("{{" + name + "}}" for name in services.PLACEHOLDERS),
        "number_placeholders": "{{price}}, {{rule_id}} and {{id}}",
        "example_placeholder": "{{side}} {{symbol}} at {{price}}",
        "side_choices": SIDE_CHOICES,
        "telegram_api": TELEGRAM_API,
        "secret_shown": services.secret_masked(stored.secret) if stored else "",
        "url_shown": services.url_masked(stored) if stored else "",
    }


def _page_context(request, *, form: DestinationForm | None = None) -> dict:
    names = _rule_names()
    destinations = services.destinations_list()
    context = {
        "cards": [_card(d, names) for d in destinations],
        "destinations": destinations,
        "add_action": reverse("alerts:add"),
        "failing_after": services.FAILING_AFTER,
        **_form_context(form or DestinationForm()),
    }
    context.update(_log_context(_log_filters(request.GET)))
    return context


@require_GET
def alerts_page(request):
    return render(request, PAGE, _page_context(request))


@require_POST
def destination_add(request):
    form = DestinationForm(request.POST)
    if form.is_valid():
        try:
            destination = services.destination_create(**form.service_data())
        except ValidationError as err:
            form.add_service_errors(err)
        else:
            messages.success(request, f"Added the destination “{destination.name}”.")
            return redirect(f"{reverse('alerts:list')}#dest-{destination.pk}")
    # A refused form is shown again with its sentences (200: htmx and browsers show it as is).
    return render(request, PAGE, _page_context(request, form=form))


@require_http_methods(["GET", "POST"])
def destination_edit(request, pk: int):
    destination = get_object_or_404(Destination, pk=pk)
    if request.method == "POST":
        form = DestinationForm(request.POST, destination=destination)
        if form.is_valid():
            try:
                services.destination_update(destination, **form.service_data())
            except ValidationError as err:
                form.add_service_errors(err)
                destination = get_object_or_404(Destination, pk=pk)  # not the refused values
                form.destination = destination
            else:
                messages.success(request, f"Saved the destination “{destination.name}”.")
                return redirect(f"{reverse('alerts:list')}#dest-{destination.pk}")
    else:
        form = DestinationForm(destination=destination)
    context = {
        "card": _card(destination),
        "edit_action": reverse("alerts:edit", args=[destination.pk]),
        "cancel_url": f"{reverse('alerts:list')}#dest-{destination.pk}",
        **_form_context(form),
    }
    return render(request, EDIT, context)


def _card_response(request, card: Card, *, with_log: bool = False):
    """htmx: the card alone (and the log, out of band). Without JS: back to the page."""
    if is_htmx(request):
        context: dict = {"card": card, "failing_after": services.FAILING_AFTER}
        if with_log:
            context.update(_log_context(_log_filters(request.POST)), log_oob=True)
        return render(request, "alerts/partials/card_response.html", context)
    message = card.outcome or card.notice
    if card.outcome and not card.outcome_ok:
        messages.error(request, f"“{card.destination.name}”: {message}")
    else:
        messages.success(request, f"“{card.destination.name}”: {message}")
    return redirect(f"{reverse('alerts:list')}#dest-{card.destination.pk}")


def outcome_sentence(delivery: Delivery) -> str:
    """What a "Send test" came to, in one sentence."""
    if delivery.status == Delivery.Status.DELIVERED:
        return f"Delivered: HTTP {delivery.http_status} in {delivery.latency_ms or 0:.0f} ms"
    return f"Failed: {delivery.error or 'no answer'}"


@require_POST
def destination_test(request, pk: int):
    destination = get_object_or_404(Destination, pk=pk)
    delivery = async_to_sync(sender.send_test)(destination)
    destination.refresh_from_db()
    card = _card(
        destination,
        outcome=outcome_sentence(delivery),
        outcome_ok=delivery.status == Delivery.Status.DELIVERED,
    )
    return _card_response(request, card, with_log=True)


@require_POST
def destination_enabled(request, pk: int):
    destination = get_object_or_404(Destination, pk=pk)
    enabled = request.POST.get("enabled", "") == "1"
    services.destination_set_enabled(destination, enabled)
    state = "enabled: new signals are sent to it" if enabled else "disabled: nothing is sent"
    return _card_response(request, _card(destination, notice=f"{destination.name} is {state}."))


@require_http_methods(["GET", "POST"])
def destination_remove(request, pk: int):
    """A confirmation page (works without JavaScript); POST removes through the service."""
    destination = get_object_or_404(Destination, pk=pk)
    error = ""
    if request.method == "POST":
        try:
            services.destination_remove(destination.pk)
        except ValidationError as err:
            error = " ".join(err.messages)
        else:
            messages.success(request, f"Removed the destination “{destination.name}”.")
            return redirect("alerts:list")
    pending = destination.deliveries.filter(status=Delivery.Status.PENDING).count()
    context = {
        "card": _card(destination),
        "pending": pending,
        "error": error,
    }
    return render(request, "alerts/remove.html", context, status=409 if error else 200)


@require_GET
def delivery_log(request):
    """The log alone: polled every few seconds, and fetched when a filter changes. The
    destinations' health comes along out of band."""
    context = _log_context(_log_filters(request.GET))
    names = _rule_names()
    context["health_cards"] = [_card(d, names) for d in services.destinations_list()]
    context["failing_after"] = services.FAILING_AFTER
    return render(request, "alerts/partials/log_response.html", context)


@require_GET
def failing_warning(request):
    """The dashboard's warning alone (polled, so it appears while the dashboard is open)."""
    return render(
        request,
        "alerts/partials/failing.html",
        {"alerts_failing": services.destinations_failing()},
    )
