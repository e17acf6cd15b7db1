"""Rule pages: the list, the builder (with its htmx endpoints), the preview, delete."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.core.instruments import Instrument
from engine.core.rules import RuleError, validate_definition
from engine.services import engine_state_get, engine_stopped_problem, settings_get
from rules.forms import (
    MAX_UPLOAD_BYTES,
    OPERAND_SUGGESTIONS,
    OPERATOR_LABELS,
    SIDE_LABELS,
    TIMEFRAME_CHOICES,
    PreviewForm,
    RuleBuilderForm,
)
from rules.forms.builder import no_volume_warning
from rules.models import Rule
from rules.services import (
    ACTIVE_LOCK_ACTION,
    MAX_ACTIVE_RULES,
    SYSTEM_READ_ONLY,
    rule_check_editable,
    rule_clone,
    rule_create,
    rule_delete,
    rule_set_active,
    rule_update,
    rules_active,
)
from scalpsite.ui import is_htmx
from signals import realtime
from signals.stats import (
    PERIODS,
    outcome_stats,
    period_caption,
    period_clean,
    period_signals,
    stats_context,
)
from watchlists.services import watchlist_get_active

BUILDER = "rules/builder.html"


def _get_rule(pk: int) -> Rule:
    return get_object_or_404(Rule, pk=pk)


def _active_instruments() -> list[Instrument]:
    """The active watchlist's items (for the no-volume warning); [] without one."""
    watchlist = watchlist_get_active()
    return watchlist.instruments if watchlist is not None else []


def _volume_warning(rule: Rule, instruments: list[Instrument]) -> str:
    try:
        rule_def = validate_definition(rule.definition)
    except RuleError:
        return ""
    return no_volume_warning(rule_def, instruments)


def _locked_rule_ids() -> list[int]:
    state = engine_state_get()
    return state.run_rule_ids if state.is_locked else []


def _list_context(
    *, toggle_errors: dict[int, str] | None = None, period: str | None = None
) -> dict:
    active_count = len(rules_active())  # first: a fresh database makes the system rule active
    rules = list(Rule.objects.all())
    instruments = _active_instruments()
    period = period_clean(period)
    # One query: every rule's figures at the first horizon over the period.
    stats = outcome_stats(period_signals(period, timezone.now()), realtime.outcome_horizons())
    for rule in rules:  # a refused toggle's sentence and the no-volume warning, in its row
        setattr(rule, "toggle_error", (toggle_errors or {}).get(rule.pk, ""))  # noqa: B010
        setattr(rule, "volume_warning", _volume_warning(rule, instruments))  # noqa: B010
        setattr(rule, "stats", stats.first(rule.pk))  # noqa: B010
    locked_ids = _locked_rule_ids()
    locked = next((r for r in rules if r.pk in locked_ids and not r.is_system), None)
    return {
        "rules": rules,
        "lock_message": _lock_message(locked),
        "activate_block": engine_stopped_problem(action=ACTIVE_LOCK_ACTION),
        "custom_count": sum(not rule.is_system for rule in rules),
        "active_count": active_count,
        "max_active": MAX_ACTIVE_RULES,
        "locked_rule_ids": locked_ids,
        "engine": engine_state_get(),
        "periods": PERIODS,
        "period": period,
    }


@require_GET
def rule_list(request):
    return render(request, "rules/list.html", _list_context(period=request.GET.get("period")))


def _rule_stats(rule: Rule, period: str) -> dict:
    """The rule page's statistics section: per horizon and per symbol over ``period``."""
    table = outcome_stats(
        period_signals(period, timezone.now(), rule_id=rule.pk), realtime.outcome_horizons()
    )
    return {
        **stats_context(table, period_caption(period)),
        "periods": PERIODS,
        "period": period,
        "period_anchor": "#rule-stats",
    }


# The builder page


def _preview_form(request=None) -> PreviewForm:
    watchlist = watchlist_get_active()
    symbols = watchlist.symbols if watchlist is not None else []
    bar_seconds = settings_get().bar_seconds
    if request is None:
        return PreviewForm(symbols=symbols, bar_seconds=bar_seconds)
    return PreviewForm(request.POST, request.FILES, symbols=symbols, bar_seconds=bar_seconds)


def _lock_message(rule: Rule | None) -> str:
    """Why ``rule`` can't be edited now ('' when it can)."""
    if rule is None:
        return ""
    try:
        rule_check_editable(rule=rule)
    except ValidationError as err:
        return " ".join(err.messages)
    return ""


def _builder_context(form, *, rule=None, preview_form=None, preview=None, **extra) -> dict:
    lock_message = _lock_message(rule)
    form.sync_text_box()
    return {
        "form": form,
        "volume_warning": form.volume_warning(_active_instruments()),
        "rule": rule,
        "lock_message": lock_message,
        "preview_form": preview_form or _preview_form(),
        "preview": preview,
        "operand_suggestions": OPERAND_SUGGESTIONS,
        "operator_labels": OPERATOR_LABELS,
        "timeframe_choices": TIMEFRAME_CHOICES,
        "side_labels": SIDE_LABELS,
        "bar_seconds": settings_get().bar_seconds,
        "max_upload_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
        **extra,
    }


def _builder_form(data=None, *, rule: Rule | None = None, live: bool = False) -> RuleBuilderForm:
    """The builder form, checking timeframes against the Settings page's bar size."""
    return RuleBuilderForm(data, rule=rule, live=live, bar_seconds=settings_get().bar_seconds)


def _run_preview(request, form: RuleBuilderForm):
    """Validate the draft and the preview choices; (preview form, result or None, problem)."""
    preview_form = _preview_form(request)
    if not form.is_valid() or (rule_def := form.rule_def) is None:
        return preview_form, None, "Fix the rule's highlighted fields first; then preview it."
    if not preview_form.is_valid():
        return preview_form, None, ""
    result = preview_form.run(rule_def)
    return preview_form, result, ""


def _builder_page(request, *, rule: Rule | None):
    if request.method == "GET":
        context = _builder_context(_builder_form(rule=rule), rule=rule)
        if rule is not None:
            context.update(_rule_stats(rule, period_clean(request.GET.get("period"))))
        return render(request, BUILDER, context)

    action = request.POST.get("action", "save")
    # Editing steps without JavaScript (add, remove, fill, preview) don't need a name yet.
    editing = bool(request.POST.get("remove")) or action in ("add", "parse", "preview")
    form = _builder_form(request.POST, rule=rule, live=editing)
    if request.POST.get("remove"):
        form.remove_row(request.POST["remove"])
        form.is_valid()
        return render(request, BUILDER, _builder_context(form, rule=rule))
    if action == "add":
        form.add_row()
        form.is_valid()
        return render(request, BUILDER, _builder_context(form, rule=rule))
    if action == "parse":
        form.apply_text()
        form.is_valid()
        return render(request, BUILDER, _builder_context(form, rule=rule))
    if action == "preview":
        form.use_what_is_shown(fill_rows=True)
        preview_form, result, problem = _run_preview(request, form)
        context = _builder_context(
            form, rule=rule, preview_form=preview_form, preview=result, preview_problem=problem
        )
        return render(request, BUILDER, context)

    form.use_what_is_shown(fill_rows=True)
    if form.is_valid():
        name = form.cleaned_data["name"]
        try:
            if rule is None:
                saved = rule_create(name=name, definition=form.definition)
            else:
                saved = rule_update(rule=rule, name=name, definition=form.definition)
        except ValidationError as err:
            # The lock is already on the page in its banner: say it once.
            if " ".join(err.messages) != _lock_message(rule):
                form.add_service_error(err)
        else:
            verb = "Created" if rule is None else "Saved"
            messages.success(request, f"{verb} the rule “{saved.name}”: {saved.text}.")
            return redirect("rules:list")
    return render(request, BUILDER, _builder_context(form, rule=rule, save_failed=True))


@require_http_methods(["GET", "POST"])
def rule_new(request):
    return _builder_page(request, rule=None)


@require_http_methods(["GET", "POST"])
def rule_edit(request, pk: int):
    rule = _get_rule(pk)
    if rule.is_system:
        messages.error(request, SYSTEM_READ_ONLY)
        return redirect("rules:list")
    return _builder_page(request, rule=rule)


# htmx endpoints of the builder: each takes the whole builder form.


def _conditions_response(request, form: RuleBuilderForm):
    form.is_valid()
    return render(request, f"{BUILDER}#conditions-update", _builder_context(form))


@require_POST
def builder_row(request):
    """Add a condition row (``action=add``) or remove one (``remove=<row key>``)."""
    form = _builder_form(request.POST, live=True)
    if request.POST.get("remove"):
        form.remove_row(request.POST["remove"])
    else:
        form.add_row()
    return _conditions_response(request, form)


@require_POST
def parse_text_view(request):
    """Fill the rows (and logic) from the text box, or show why the text doesn't parse."""
    form = _builder_form(request.POST, live=True)
    form.apply_text()
    return _conditions_response(request, form)


@require_POST
def builder_preview_text(request):
    """As-you-type feedback: the rule's text form and every inline error slot (out of band)."""
    form = _builder_form(request.POST, live=True)
    form.use_what_is_shown(fill_rows=False)
    form.is_valid()
    return render(request, f"{BUILDER}#feedback", _builder_context(form, oob=True))


@require_POST
def preview(request):
    """Run the draft rule over recent bars and show the signals it would have fired."""
    form = _builder_form(request.POST, live=True)
    form.use_what_is_shown(fill_rows=False)
    preview_form, result, problem = _run_preview(request, form)
    context = _builder_context(
        form, preview_form=preview_form, preview=result, preview_problem=problem, oob=True
    )
    return render(request, f"{BUILDER}#preview-update", context)


# List actions


@require_POST
def rule_clone_view(request, pk: int):
    source = _get_rule(pk)
    try:
        clone = rule_clone(rule=source)
    except ValidationError as err:
        messages.error(request, " ".join(err.messages))
        return redirect("rules:list")
    messages.success(request, f"Cloned “{source.name}” as “{clone.name}”: edit it below.")
    return redirect("rules:edit", pk=clone.pk)


@require_POST
def rule_active_view(request, pk: int):
    """The Active toggle: ``active=1`` joins the active set, ``active=0`` leaves it.

    htmx gets the rules table back (a refusal in the rule's row); a plain post goes back to
    the list with the outcome as a message.
    """
    rule = _get_rule(pk)
    active = request.POST.get("active") == "1"
    error = ""
    try:
        rule_set_active(rule=rule, active=active)
    except ValidationError as err:
        error = " ".join(err.messages)
    if is_htmx(request):
        context = _list_context(
            toggle_errors={rule.pk: error} if error else None, period=request.POST.get("period")
        )
        return render(request, "rules/list.html#rules-table", context)
    if error:
        messages.error(request, error)
    elif active:
        messages.success(request, f"“{rule.name}” is active: the engine runs it at its next start.")
    else:
        messages.success(request, f"“{rule.name}” is no longer active.")
    return redirect("rules:list")


@require_http_methods(["GET", "POST"])
def rule_delete_view(request, pk: int):
    """A confirmation page (works without JavaScript); POST deletes through the service."""
    rule = _get_rule(pk)
    if rule.is_system:
        messages.error(request, "The system rule can't be deleted; clone it to make your own.")
        return redirect("rules:list")
    error = ""
    if request.method == "POST":
        try:
            rule_delete(rule=rule)
        except ValidationError as err:
            error = " ".join(err.messages)
        else:
            messages.success(request, f"Deleted the rule “{rule.name}”.")
            return redirect("rules:list")
    else:
        try:
            rule_check_editable(rule=rule, action="deleting it")
        except ValidationError as err:
            error = " ".join(err.messages)
    context = {"rule": rule, "error": error, "is_active": rule.is_active}
    status = 409 if error and request.method == "POST" else 200
    return render(request, "rules/delete.html", context, status=status)
