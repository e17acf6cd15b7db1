"""Rules gain ``is_active`` (DESIGN §7.2: several active rules); the seed's single active rule
(``AppSettings.active_rule``, the system rule on a fresh install) stays active."""

from django.db import migrations, models


def keep_active(apps, schema_editor):
    Rule = apps.get_model("rules", "Rule")
    AppSettings = apps.get_model("engine", "AppSettings")
    row = AppSettings.objects.filter(pk=1).first()
    active_id = row.active_rule_id if row is not None else None
    if active_id is None:
        # settings_get() made the system rule active whenever none was chosen.
        active_id = (
            Rule.objects.filter(is_system=True).order_by("pk").values_list("pk", flat=True).first()
        )
    if active_id is not None:
        Rule.objects.filter(pk=active_id).update(is_active=True)


def back_to_one(apps, schema_editor):
    Rule = apps.get_model("rules", "Rule")
    AppSettings = apps.get_model("engine", "AppSettings")
    first = Rule.objects.filter(is_active=True).order_by("pk").first()
    AppSettings.objects.filter(pk=1).update(active_rule=first)


class Migration(migrations.Migration):
    dependencies = [("rules", "0002_seed_system_rule"), ("engine", "0001_initial")]
    operations = [
        migrations.AddField(
            model_name="rule",
            name="is_active",
            field=models.BooleanField(default=False, editable=False, verbose_name="active"),
        ),
        migrations.RunPython(keep_active, back_to_one),
    ]
