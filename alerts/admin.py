"""Admin for alert destinations and their delivery log: the same validation as the Alerts
page and ``manage.py destinations`` (``alerts.services.destination_clean``), secrets never
shown back."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from alerts import services
from alerts.models import Delivery, Destination
from alerts.sender import send_test

SIDE_CHOICES = [("", "any side"), ("buy", "buy only"), ("sell", "sell only")]
SERVICE_FIELDS = (
    "name", "kind", "url", "secret", "chat_id", "template", "rule_ids", "symbols", "side",
    "enabled",
)  # fmt: skip


class ListAsText(forms.CharField):
    """A JSON list column (rule ids, symbols) as the text the pages take: ``1, 2``."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return value


def _text(**kwargs: Any) -> forms.CharField:
    # No max_length or other validator of Django's own: the service says it in its words.
    return forms.CharField(required=False, **kwargs)


class DestinationAdminForm(forms.ModelForm):
    name = _text(help_text="Empty: the kind and the host (“Webhook example.com”).")
    kind = _text(widget=forms.Select(choices=Destination.Kind.choices))
    url = _text(
        label="URL",
        widget=forms.TextInput(attrs={"size": 80}),
        help_text="Webhook or Discord: the URL to POST to. Telegram: the Bot API base URL "
        "(empty: https://api.telegram.org).",
    )
    secret = _text(
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Webhook: the HMAC secret (X-Scalp-Signature). Telegram: the bot token. "
        "Never shown back; leave it empty to keep the stored one.",
    )
    chat_id = _text(label="Chat id", help_text="Telegram: -1001234567890 or @channelname.")
    template = _text(
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text="Webhook: a JSON body with placeholders "
        + ", ".join("{{" + p + "}}" for p in services.PLACEHOLDERS)
        + " (empty: the signal event).",
    )
    rule_ids = ListAsText(
        required=False, label="Rules", help_text="Rule ids, e.g. 1, 4 (empty: every rule)."
    )
    symbols = ListAsText(required=False, help_text="e.g. AAPL, ES:FUT:CME (empty: every symbol).")
    side = _text(widget=forms.Select(choices=SIDE_CHOICES))
    enabled = forms.BooleanField(required=False, initial=True)

    class Meta:
        model = Destination
        fields = list(SERVICE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service_kwargs: dict[str, Any] = {}
        for field in self.fields.values():
            field.validators = []  # (Django's NUL check included): the service's sentences
        stored = self.instance if self.instance.pk is not None else None
        if stored is not None and stored.kind == Destination.Kind.DISCORD:
            # A Discord webhook URL ends with its token: shown masked, never in the box.
            self.initial["url"] = ""
            self.fields[
                "url"
            ].help_text = f"Stored: {services.url_masked(stored)}. Leave it empty to keep it."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        data = {field: cleaned.get(field) for field in SERVICE_FIELDS}
        data["enabled"] = bool(cleaned.get("enabled"))
        check = dict(data)
        stored = (
            Destination.objects.filter(pk=self.instance.pk).first()
            if self.instance.pk is not None
            else None
        )
        if stored is not None and stored.kind == data["kind"]:
            # An empty box keeps what is stored (destination_update does the same).
            if not data["secret"]:
                check["secret"] = stored.secret
            if stored.kind == Destination.Kind.DISCORD and not data["url"]:
                data["url"] = check["url"] = stored.url
        try:
            clean = services.destination_clean(check)
        except ValidationError as err:
            for field, msgs in err.message_dict.items():
                self.add_error(field if field in self.fields else None, msgs)
            return cleaned
        self.service_kwargs = data
        cleaned.update(clean)
        return cleaned

    def _post_clean(self) -> None:
        """No model validation on top: the service checked every field, and the admin saves
        through the service (``save_model``), never this form's instance."""


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationAdminForm
    list_display = ["id", "name", "kind", "url_shown", "filters", "enabled", "health_shown"]
    list_display_links = ["id", "name"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    actions = ["send_test", "enable", "disable", "remove"]
    readonly_fields = [
        "secret_shown", "created_at", "failures_in_row", "last_error", "last_ok_at",
    ]  # fmt: skip

    def get_fields(self, request: Any, obj: Destination | None = None) -> Any:
        fields = list(SERVICE_FIELDS)
        if obj is not None:
            fields.insert(fields.index("secret"), "secret_shown")
            fields += ["created_at", "failures_in_row", "last_error", "last_ok_at"]
        return fields

    @admin.display(description="URL")
    def url_shown(self, obj: Destination) -> str:
        if obj.kind == Destination.Kind.TELEGRAM:
            return f"chat {obj.chat_id} via {obj.url}"
        return services.url_masked(obj)

    @admin.display(description="stored secret")
    def secret_shown(self, obj: Destination) -> str:
        return services.secret_masked(obj.secret) or "none"

    @admin.display(description="filters")
    def filters(self, obj: Destination) -> str:
        return obj.filters_text()

    @admin.display(description="health")
    def health_shown(self, obj: Destination) -> str:
        return obj.health_text(with_error=True)

    def save_model(self, request: Any, obj: Destination, form: Any, change: bool) -> None:
        data = form.service_kwargs
        if change:
            stored = Destination.objects.get(pk=obj.pk)
            was_enabled = stored.enabled
            saved = services.destination_update(stored, **data)
            if saved.enabled and not was_enabled:
                services.destination_set_enabled(saved, True)  # a fresh start: health reset
        else:
            saved = services.destination_create(**data)
        for field in Destination._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))

    def delete_model(self, request: Any, obj: Destination) -> None:
        services.destination_remove(obj.pk)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for destination_id in list(queryset.values_list("pk", flat=True)):
            services.destination_remove(destination_id)

    def get_actions(self, request: Any) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "remove" goes through the service
        return actions

    @admin.action(description="Send a test signal to the selected destinations")
    def send_test(self, request: Any, queryset: Any) -> None:
        for destination in queryset:
            delivery = async_to_sync(send_test)(destination)
            if delivery.status == Delivery.Status.DELIVERED:
                self.message_user(
                    request,
                    f"{destination.name}: delivered (HTTP {delivery.http_status}, "
                    f"{delivery.latency_ms:g} ms).",
                )
            else:
                self.message_user(
                    request, f"{destination.name}: failed. {delivery.error}", messages.ERROR
                )

    @admin.action(description="Enable the selected destinations")
    def enable(self, request: Any, queryset: Any) -> None:
        for destination in queryset:
            services.destination_set_enabled(destination, True)
        self.message_user(request, f"Enabled {len(queryset)} destination(s).")

    @admin.action(description="Disable the selected destinations (their pending alerts wait)")
    def disable(self, request: Any, queryset: Any) -> None:
        for destination in queryset:
            services.destination_set_enabled(destination, False)
        self.message_user(request, f"Disabled {len(queryset)} destination(s).")

    @admin.action(description="Remove the selected destinations with their logs")
    def remove(self, request: Any, queryset: Any) -> None:
        names = [d.name for d in queryset]
        self.delete_queryset(request, queryset)
        self.message_user(request, f"Removed {', '.join(names)}.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log, read only. No add or change (the sender writes it), and no delete:
    a pending row is the outbox itself (deleting one would silently drop an alert the sender
    owes and break at-least-once), a finished row is the record of what was sent; removing a
    destination removes its log, through the service."""

    list_display = [
        "id", "created_at", "destination", "signal_shown", "status", "http_status", "tries",
        "latency_ms", "error",
    ]  # fmt: skip
    list_filter = ["status", "destination"]
    list_select_related = ["destination"]
    date_hierarchy = "created_at"

    @admin.display(description="signal")
    def signal_shown(self, obj: Delivery) -> str:
        return f"#{obj.signal_id}" if obj.signal_id is not None else "test"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Delivery | None = None) -> bool:
        return False
