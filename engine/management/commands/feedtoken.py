"""Print (or rotate) the token external programs use on /ws/signals/ and /api/."""

from django.core.management.base import BaseCommand

from engine.tokens import feed_token, feed_token_rotate


class Command(BaseCommand):
    help = "Print the external consumer token; --rotate replaces it (old clients must update)."

    def add_arguments(self, parser):
        parser.add_argument("--rotate", action="store_true", help="generate a new token")

    def handle(self, *args, rotate: bool = False, **options):
        token = feed_token_rotate() if rotate else feed_token()
        self.stdout.write(token)
