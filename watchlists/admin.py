"""Admin for watchlists: items inline (their text), validated and locked like everywhere else."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect

from watchlists import services
from watchlists.forms import EXAMPLES, ItemsField, item_described
from watchlists.models import MAX_SYMBOLS, Watchlist, WatchlistItem


class WatchlistItemForm(forms.ModelForm):
    # No length limit here: the service's sentence names an item too long, as on the page.
    text = ItemsField(
        label="Item",
        help_text=f"SYMBOL or SYMBOL:TYPE[:EXCHANGE[:CURRENCY]], e.g. {EXAMPLES}.",
        widget=forms.TextInput(attrs={"size": 22, "spellcheck": "false"}),
    )

    class Meta:
        model = WatchlistItem
        fields = ["text", "position"]

    def clean_text(self):
        try:
            return services.symbol_normalize(self.cleaned_data.get("text"))
        except ValidationError as err:
            raise ValidationError(err.message_dict["symbols"]) from err


class WatchlistItemFormSet(forms.BaseInlineFormSet):
    def clean(self):
        # Our sentences first: Django's own unique check only says "duplicate data".
        kept = [
            form.cleaned_data["text"]
            for form in self.forms
            if form.cleaned_data.get("text") and not form.cleaned_data.get("DELETE")
        ]
        if len(kept) > MAX_SYMBOLS:
            raise ValidationError(
                f"A watchlist holds at most {MAX_SYMBOLS} symbols; remove one first."
            )
        duplicates = sorted({s for s in kept if kept.count(s) > 1})
        if duplicates:
            raise ValidationError(f"{', '.join(duplicates)} is listed twice.")
        super().clean()


class WatchlistItemInline(admin.TabularInline):
    model = WatchlistItem
    form = WatchlistItemForm
    formset = WatchlistItemFormSet
    extra = 1
    max_num = MAX_SYMBOLS
    fields = ["text", "reads_as", "position"]
    readonly_fields = ["reads_as"]

    @admin.display(description="reads as")
    def reads_as(self, item: WatchlistItem) -> str:
        """How the stored item reads (type, exchange, currency), e.g. "future on CME"."""
        if item.pk is None:
            return ""
        return item_described(item.instrument)


class WatchlistAdminForm(forms.ModelForm):
    class Meta:
        model = Watchlist
        fields = ["name"]

    def clean_name(self):
        try:
            return services.watchlist_name_clean(self.cleaned_data.get("name"))
        except ValidationError as err:
            raise ValidationError(err.message_dict["name"]) from err

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None:
            try:
                services.watchlist_check_editable(watchlist=self.instance)
            except ValidationError as err:
                raise ValidationError(err.messages) from err
        return cleaned


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    form = WatchlistAdminForm
    inlines = [WatchlistItemInline]
    list_display = ["name", "is_active", "symbol_list", "updated_at"]
    readonly_fields = ["is_active"]
    actions = ["activate"]

    @admin.display(description="items")
    def symbol_list(self, obj: Watchlist) -> str:
        return " ".join(obj.symbols)

    def save_model(self, request, obj, form, change):
        if change:
            services.watchlist_rename(watchlist=obj, name=obj.name)
        else:
            created = services.watchlist_create(name=obj.name)
            obj.pk = created.pk
            obj.is_active = created.is_active

    def save_formset(self, request, form, formset, change):
        symbols = [
            (f.cleaned_data.get("position") or 0, i, f.cleaned_data["text"])
            for i, f in enumerate(formset.forms)
            if f.cleaned_data.get("text") and not f.cleaned_data.get("DELETE")
        ]
        services.watchlist_set_symbols(
            watchlist=form.instance, symbols=[s for _, _, s in sorted(symbols)]
        )
        # The admin's change message reads what formset.save() would have recorded.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def delete_model(self, request, obj):
        services.watchlist_delete(watchlist=obj)

    def delete_queryset(self, request, queryset):
        services.watchlists_delete(watchlists=list(queryset))

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            # Django's action, behind the same lock as the delete page: a list a live run
            # holds is refused with a message before the confirmation page and after it.
            func, name, description = actions["delete_selected"]

            def delete_selected(modeladmin, request, queryset):
                try:
                    for watchlist in queryset:
                        services.watchlist_check_editable(watchlist=watchlist, action="deleting it")
                    return func(modeladmin, request, queryset)
                except ValidationError as err:
                    modeladmin.message_user(request, " ".join(err.messages), messages.ERROR)
                    return None

            actions["delete_selected"] = (delete_selected, name, description)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and request.method == "POST":
            try:
                services.watchlist_check_editable(watchlist=obj, action="deleting it")
            except ValidationError as err:
                self.message_user(request, " ".join(err.messages), messages.ERROR)
                return redirect("admin:watchlists_watchlist_change", obj.pk)
        return super().delete_view(request, object_id, extra_context)

    @admin.action(description="Make the selected watchlist the active one")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one watchlist to activate.", messages.ERROR)
            return
        try:
            services.watchlist_activate(watchlist=queryset.get())
        except ValidationError as err:
            self.message_user(request, " ".join(err.messages), messages.ERROR)
        else:
            self.message_user(request, f"“{queryset.get().name}” is now the active watchlist.")
