"""Admin for rules: same validation and locks as every other entry point."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect

from engine.core.inputs import InputError, load_json
from rules import services
from rules.models import Rule


class DefinitionField(forms.CharField):
    """The definition as JSON text, read like every other untrusted document: deep nesting
    or a 5000-digit number is a sentence, not a RecursionError."""

    widget = forms.Textarea(attrs={"rows": 12, "cols": 90})

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return load_json(text)
        except InputError as err:
            raise ValidationError(f"Enter a valid JSON rule definition: {err}") from None


class RuleAdminForm(forms.ModelForm):
    definition = DefinitionField(help_text=Rule._meta.get_field("definition").help_text)

    class Meta:
        model = Rule
        fields = ["name", "definition"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            try:
                services.rule_check_editable(rule=self.instance)
            except ValidationError as err:
                raise ValidationError(err.messages) from err
        return cleaned


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = [
        "name", "is_active", "side_shown", "type", "text", "cooldown_sec", "trigger", "updated_at",
    ]  # fmt: skip
    list_filter = ["is_active", "type"]
    search_fields = ["name"]
    actions = ["activate_rules", "deactivate_rules", "clone_rules", "delete_custom_rules"]
    readonly_fields = ["type", "is_active", "text", "definition_json"]

    @admin.display(description="side")
    def side_shown(self, obj: Rule) -> str:
        return obj.side or "–"

    @admin.display(description="definition")
    def definition_json(self, obj: Rule) -> str:
        return json.dumps(obj.definition, indent=2)

    def get_fields(self, request, obj=None):
        if obj is not None and obj.is_system:
            return ["name", "type", "is_active", "text", "definition_json"]
        return ["name", "definition", "is_active", "text"] if obj else ["name", "definition"]

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_system:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_system:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Bulk delete would bypass the system-rule and running-rule checks.
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            services.rule_update(rule=obj, name=obj.name, definition=obj.definition)
        else:
            created = services.rule_create(name=obj.name, definition=obj.definition)
            obj.pk = created.pk

    def delete_model(self, request, obj):
        services.rule_delete(rule=obj)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if (
            obj is not None
            and request.method == "POST"
            and self.has_delete_permission(request, obj)
        ):
            try:
                services.rule_check_editable(rule=obj, action="deleting it")
            except ValidationError as err:
                self.message_user(request, " ".join(err.messages), messages.ERROR)
                return redirect("admin:rules_rule_change", obj.pk)
        return super().delete_view(request, object_id, extra_context)

    @admin.action(description="Activate selected rules (the engine scans with them)")
    def activate_rules(self, request, queryset):
        self._change_active(request, services.rules_activate, queryset)

    @admin.action(description="Deactivate selected rules")
    def deactivate_rules(self, request, queryset):
        self._change_active(request, services.rules_deactivate, queryset)

    def _change_active(self, request, change, queryset) -> None:
        try:
            active = change(ids=list(queryset.values_list("pk", flat=True)))
        except ValidationError as err:
            self.message_user(request, " ".join(err.messages), messages.ERROR)
            return
        names = ", ".join(f"“{rule.name}”" for rule in active) or "none"
        self.message_user(request, f"Active rules ({len(active)} of at most "
                          f"{services.MAX_ACTIVE_RULES}): {names}.")  # fmt: skip

    @admin.action(description="Clone selected rules")
    def clone_rules(self, request, queryset):
        for rule in queryset:
            clone = services.rule_clone(rule=rule)
            self.message_user(request, f"Cloned “{rule.name}” as “{clone.name}”.")

    @admin.action(description="Delete selected custom rules")
    def delete_custom_rules(self, request, queryset):
        for rule in queryset:
            try:
                services.rule_delete(rule=rule)
            except ValidationError as err:
                self.message_user(request, f"{rule.name}: {' '.join(err.messages)}", messages.ERROR)
            else:
                self.message_user(request, f"Deleted “{rule.name}”.")
