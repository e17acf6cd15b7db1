"""Seed the read-only system rule `PRICE > MA5 AND MA5 > MA10`, cooldown 60 (DESIGN §6)."""

from django.db import migrations

SYSTEM_RULE = {
    "name": "MA Momentum",
    "type": "system",
    "definition": {
        "logic": "AND",
        "conditions": [
            {"left": "PRICE", "op": ">", "right": "MA5"},
            {"left": "MA5", "op": ">", "right": "MA10"},
        ],
        "cooldown_sec": 60,
        "trigger": "level",
    },
}


def seed(apps, schema_editor):
    Rule = apps.get_model("rules", "Rule")
    if not Rule.objects.filter(is_system=True).exists():
        Rule.objects.create(is_system=True, **SYSTEM_RULE)


def unseed(apps, schema_editor):
    apps.get_model("rules", "Rule").objects.filter(is_system=True).delete()


class Migration(migrations.Migration):
    dependencies = [("rules", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
