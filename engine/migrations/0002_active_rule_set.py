"""The active rule becomes a set (``Rule.is_active``, moved there by rules 0003) and a run
holds a list of rule ids (``run_rules``) instead of one (``run_rule``)."""

from django.db import migrations, models


def run_rule_to_list(apps, schema_editor):
    EngineState = apps.get_model("engine", "EngineState")
    for state in EngineState.objects.exclude(run_rule=None):
        state.run_rules = [state.run_rule_id]
        state.save(update_fields=["run_rules"])


def run_rules_to_one(apps, schema_editor):
    EngineState = apps.get_model("engine", "EngineState")
    for state in EngineState.objects.all():
        state.run_rule_id = state.run_rules[0] if state.run_rules else None
        state.save(update_fields=["run_rule"])


class Migration(migrations.Migration):
    dependencies = [("engine", "0001_initial"), ("rules", "0003_rule_is_active")]
    operations = [
        migrations.AddField(
            model_name="enginestate",
            name="run_rules",
            field=models.JSONField(blank=True, default=list, help_text="The run's rule ids."),
        ),
        migrations.RunPython(run_rule_to_list, run_rules_to_one),
        migrations.RemoveField(model_name="enginestate", name="run_rule"),
        migrations.RemoveField(model_name="appsettings", name="active_rule"),
    ]
