"""The Alerts page's destination form: it only parses what was typed into the service's field
names; ``alerts.services.destination_clean`` (through create/update) decides what is allowed,
and its sentences are put back beside the boxes they belong to."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from alerts.models import TELEGRAM_API, Destination
from rules.models import Rule

SIDE_CHOICES = [("", "Any side"), ("buy", "Buy only"), ("sell", "Sell only")]

# Per kind: the form box that holds the service's ``url`` and ``secret`` fields.
URL_FIELD = {"webhook": "url", "telegram": "api_url", "discord": "discord_url"}
SECRET_FIELD = {"webhook": "secret", "telegram": "bot_token"}


class AnyChoices(forms.MultipleChoiceField):
    """Several values from a multi-select (or typed ids): the service checks each one, so an
    unknown rule gets its sentence rather than "Select a valid choice"."""

    def valid_value(self, value: Any) -> bool:
        return True


def _text(**kwargs: Any) -> forms.CharField:
    return forms.CharField(required=False, **kwargs)


class DestinationForm(forms.Form):
    """Add and Edit. ``destination`` (on Edit) is the stored one: its secret, bot token and
    Discord URL are never put back in a box; an empty box keeps them."""

    name = _text()
    kind = _text(initial=Destination.Kind.WEBHOOK)
    # webhook
    url = _text()
    secret = _text(strip=False)
    clear_secret = forms.BooleanField(required=False)  # Edit: sign no more
    template = _text(strip=False)
    # telegram
    bot_token = _text()
    chat_id = _text()
    api_url = _text()
    # discord
    discord_url = _text()
    # filters
    rule_ids = AnyChoices(required=False)
    symbols = _text()
    side = _text()
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, destination: Destination | None = None, **kwargs: Any):
        self.destination = destination
        if destination is not None and "initial" not in kwargs and not args:
            kwargs["initial"] = self.initial_of(destination)
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            # The service says it in its words ("The secret can't contain a NUL character.").
            field.validators = []
        rules = self.fields["rule_ids"]
        assert isinstance(rules, AnyChoices)
        rules.choices = [
            (str(pk), name) for pk, name in Rule.objects.order_by("name").values_list("pk", "name")
        ]

    @staticmethod
    def initial_of(destination: Destination) -> dict[str, Any]:
        """What the Edit page shows: every field but the secrets (and the Discord URL, whose
        last part is a token)."""
        return {
            "name": destination.name,
            "kind": destination.kind,
            "url": destination.url if destination.kind == Destination.Kind.WEBHOOK else "",
            "template": destination.template,
            "chat_id": destination.chat_id,
            "api_url": destination.url if destination.kind == Destination.Kind.TELEGRAM else "",
            "rule_ids": [str(i) for i in destination.rule_ids],
            "symbols": ", ".join(destination.symbols),
            "side": destination.side,
            "enabled": destination.enabled,
        }

    @property
    def chosen_kind(self) -> str:
        """The kind the boxes are shown for (what was posted, else the stored/initial one)."""
        value = self.data.get("kind") if self.is_bound else None
        if value in Destination.Kind.values:
            return str(value)
        if self.destination is not None:
            return self.destination.kind
        return Destination.Kind.WEBHOOK

    @property
    def selected_rules(self) -> list[str]:
        if self.is_bound:
            getlist = getattr(self.data, "getlist", None)
            values = getlist("rule_ids") if getlist else self.data.get("rule_ids", [])
            return [str(v) for v in values]
        return [str(v) for v in self.initial.get("rule_ids", [])]

    def service_data(self) -> dict[str, Any]:
        """The cleaned boxes under the model's field names, for ``destination_create`` /
        ``destination_update``; a box left empty on Edit keeps the stored secret or URL."""
        data = self.cleaned_data
        kind = data["kind"]
        out: dict[str, Any] = {
            "name": data["name"],
            "kind": kind,
            "rule_ids": data["rule_ids"],
            "symbols": data["symbols"],
            "side": data["side"],
            "enabled": data["enabled"],
        }
        same_kind = self.destination is not None and self.destination.kind == kind
        if kind == Destination.Kind.TELEGRAM:
            out["url"] = data["api_url"] or TELEGRAM_API
            out["secret"] = data["bot_token"]
            out["chat_id"] = data["chat_id"]
        elif kind == Destination.Kind.DISCORD:
            if data["discord_url"] or not same_kind:
                out["url"] = data["discord_url"]
            out["secret"] = ""
        else:
            out["url"] = data["url"]
            out["secret"] = data["secret"]
            out["template"] = data["template"]
            if same_kind and data["clear_secret"] and not data["secret"]:
                out["clear_secret"] = True
        return out

    def add_service_errors(self, err: ValidationError) -> None:
        """Put the service's sentences beside the boxes they are about."""
        kind = self.cleaned_data.get("kind", "")
        if not hasattr(err, "error_dict"):
            self.add_error(None, " ".join(err.messages))
            return
        for field, sentences in err.message_dict.items():
            target = {"url": URL_FIELD.get(kind, "url"), "secret": SECRET_FIELD.get(kind, "secret")}
            name = target.get(field, field)
            self.add_error(name if name in self.fields else None, " ".join(sentences))
