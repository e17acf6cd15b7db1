"""Create the first user on first run and tell the person at the terminal its password."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

PASSWORD_FILE_NAME = "admin-password.txt"


class Command(BaseCommand):
    help = "Create the 'admin' user with a random password if no user exists yet."

    def handle(self, *args, **options):
        user_model = get_user_model()
        if user_model.objects.exists():
            return
        password = os.environ.get("SCALP_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        user_model.objects.create_superuser(username="admin", email="", password=password)
        if os.environ.get("SCALP_ADMIN_PASSWORD"):
            self.stdout.write("Created user 'admin' with the password from SCALP_ADMIN_PASSWORD.")
            return
        path = settings.VAR_DIR / PASSWORD_FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"username: admin\npassword: {password}\n")
        self.stdout.write(
            self.style.SUCCESS(
                f"First run: created user 'admin' with password {password}\n"
                f"(also saved, readable only by you, in {path}). "
                "Change it in the admin under Users."
            )
        )
