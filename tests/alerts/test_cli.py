"""`manage.py destinations`: add (webhook, telegram, discord), list with secrets masked,
remove, enable, disable, test against a real receiver, log; every bad input is exit code 2
with one line, and nothing is stored."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from alerts import services, transport
from alerts.models import Delivery, Destination
from rules.models import Rule
from tests.alerts.receiver import Receiver
from tests.engine.test_commands import manage, one_line_exit_2

SECRET = "hmac-secret-never-printed-0123456789"
TOKEN = "123456789:AAE" + "x" * 30 + "tokenEND"
DISCORD = "https://discord.com/api/webhooks/1234/" + "d" * 40 + "TOKENTAIL"
TEMPLATE = '{"ticker": "{{symbol}}", "action": "{{side}}", "price": {{price}}, "id": {{id}}}'


def run(*args: str) -> str:
    out = StringIO()
    call_command("destinations", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> CommandError:
    """The CommandError a bad command ends with (exit code 2, one line), nothing stored."""
    with pytest.raises(CommandError) as caught:
        run(*args)
    err = caught.value
    assert err.returncode == 2, err
    assert "\n" not in str(err)
    assert not Destination.objects.exists()
    return err


def system_rule() -> Rule:
    return Rule.objects.get(is_system=True)


@pytest.mark.django_db
def test_add_each_kind_and_list_them_with_secrets_masked(tmp_path):
    template = tmp_path / "tv.json"
    template.write_text(TEMPLATE, encoding="utf-8")
    rule = system_rule()
    out = run("add", "webhook", "http://127.0.0.1:9000/hook", "--secret", SECRET, "--template",
              str(template), "--rules", f"{rule.pk}", "--symbols", "aapl,brk.b", "--side",
              "buy", "--name", "Executor")  # fmt: skip
    hook = Destination.objects.get()
    assert out == f"Added destination {hook.pk}\n"
    assert (hook.name, hook.kind, hook.url, hook.secret, hook.template) == (
        "Executor", "webhook", "http://127.0.0.1:9000/hook", SECRET, TEMPLATE,
    )  # fmt: skip
    assert (hook.rule_ids, hook.symbols, hook.side, hook.enabled) == (
        [rule.pk], ["AAPL", "BRK B"], "buy", True,
    )  # fmt: skip
    out = run("add", "telegram", "--token", TOKEN, "--chat-id", "-1001234567890", "--side", "sell")
    tg = Destination.objects.get(kind="telegram")
    assert out == f"Added destination {tg.pk}\n"
    assert (tg.secret, tg.chat_id, tg.url, tg.side) == (
        TOKEN, "-1001234567890", "https://api.telegram.org", "sell",
    )  # fmt: skip
    run("add", "telegram", "--token", TOKEN, "--chat-id", "@alerts", "--api-url",
        "http://127.0.0.1:8081/", "--name", "Local bot API")  # fmt: skip
    assert Destination.objects.get(name="Local bot API").url == "http://127.0.0.1:8081"
    out = run("add", "discord", DISCORD, "--symbols", "NVDA")
    dc = Destination.objects.get(kind="discord")
    assert out == f"Added destination {dc.pk}\n"
    assert (dc.url, dc.secret, dc.symbols, dc.name) == (
        DISCORD,
        "",
        ["NVDA"],
        "Discord discord.com",
    )

    listing = run("list")
    for secret in (SECRET, TOKEN, "tokenEND", DISCORD, "TOKENTAIL"):
        assert secret not in listing
    lines = listing.splitlines()
    assert lines[0].split() == ["ID", "NAME", "KIND", "ENABLED", "HEALTH", "FILTERS", "SENDS", "TO"]
    assert len(lines) == 5
    assert lines[1].split()[:2] == [str(hook.pk), "Executor"]
    assert lines[1].endswith(
        f"Rules: {rule.pk} · Symbols: AAPL, BRK B · Side: buy  "
        "http://127.0.0.1:9000/hook (signed, secret ••••6789) (template)"
    )
    assert "not sent yet" in lines[1]
    assert lines[2].endswith("chat -1001234567890 via https://api.telegram.org (token ••••nEND)")
    assert lines[4].split()[-2:] == ["NVDA", "https://discord.com/api/webhooks/1234/••••TAIL"]


@pytest.mark.django_db
def test_a_template_file_with_a_byte_order_mark_is_read_without_it(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + TEMPLATE.encode())
    run(*HOOK, "--template", str(path))
    assert Destination.objects.get().template == TEMPLATE


@pytest.mark.django_db
def test_list_remove_enable_disable():
    assert run("list") == "No destinations (add one: destinations add webhook URL).\n"
    d = services.destination_create(kind="webhook", url="http://127.0.0.1:9/x")
    d.failures_in_row = 4
    d.save()
    assert run("disable", str(d.pk)) == f"Disabled destination {d.pk}\n"
    d.refresh_from_db()
    assert not d.enabled
    row = run("list").splitlines()[1].split()
    assert row[:7] == [str(d.pk), "Webhook", "127.0.0.1", "webhook", "no", "failing", "(4"]
    assert run("enable", str(d.pk)) == f"Enabled destination {d.pk}\n"
    d.refresh_from_db()
    assert d.enabled and d.failures_in_row == 0
    assert run("remove", str(d.pk)) == f"Removed destination {d.pk}\n"
    assert not Destination.objects.exists()
    err = refused("remove", str(d.pk))
    assert str(err) == f"There is no destination {d.pk}."
    for action in ("remove", "enable", "disable", "test", "log"):
        assert "N='²' is not a whole number" in str(refused(action, "²"))
    assert "N=0 is out of range" in str(refused("remove", "0"))


@pytest.mark.django_db
def test_test_sends_one_signed_sample_and_exit_1_when_it_fails():
    with Receiver() as rx:
        run("add", "webhook", rx.url + "/hook", "--secret", SECRET, "--side", "sell")
        d = Destination.objects.get()
        out = run("test", str(d.pk))
        assert out.startswith(
            f"Test to destination {d.pk} (Webhook 127.0.0.1): delivered, HTTP 200 in "
        )
        (got,) = rx.requests
        assert got.path == "/hook"
        assert got.headers["X-Scalp-Signature"] == transport.signature(SECRET, got.body)
        assert got.headers["X-Scalp-Delivery"].startswith("test-")
        event = json.loads(got.body)
        assert (event["symbol"], event["side"], event["test"]) == ("TEST", "sell", True)

        rx.script = ["400"]
        with pytest.raises(CommandError) as caught:
            run("test", str(d.pk))
        assert caught.value.returncode == 1
        assert str(caught.value).startswith(
            f"Test to destination {d.pk} (Webhook 127.0.0.1) failed (HTTP 400, "
        )
        assert str(caught.value).endswith("The receiver answered 400: receiver says no")
        assert len(rx.requests) == 2  # a test is never retried
    tests = list(Delivery.objects.order_by("id").values_list("signal_id", "status", "http_status"))
    assert tests == [(None, "delivered", 200), (None, "failed", 400)]

    log = run("log", str(d.pk)).splitlines()
    assert log[0].split() == ["ID", "CREATED", "(UTC)", "DESTINATION", "SIGNAL", "STATUS", "HTTP",
                              "TRIES", "MS", "ERROR"]  # fmt: skip
    assert len(log) == 3
    assert log[1].split()[5:10] == ["127.0.0.1", "test", "failed", "400", "1"]
    assert log[1].endswith("The receiver answered 400: receiver says no")
    assert log[2].split()[5:9] == ["127.0.0.1", "test", "delivered", "200"]
    assert len(run("log", "--limit", "1").splitlines()) == 2
    assert len(run("log", "--status", "delivered").splitlines()) == 2
    assert "--limit=0 is out of range" in str(refused_keep("log", "--limit", "0"))
    assert "is not a status" in str(refused_keep("log", "--status", "lost"))


def refused_keep(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert caught.value.returncode == 2 and "\n" not in str(caught.value)
    return caught.value


HOOK = ("add", "webhook", "http://127.0.0.1:9000/hook")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("add", "webhook", "file:///etc/passwd"),
         "URL: Only http:// and https:// URLs can receive alerts, not “file”."),
        (("add", "webhook", "ftp://example.com/x"),
         "URL: Only http:// and https:// URLs can receive alerts, not “ftp”."),
        (("add", "webhook", "http://exa\x00mple.com/"),
         "URL: A URL can't contain a NUL character."),
        (("add", "webhook", "https://e.com/" + "a" * 5000),
         "URL: A URL is too long (5014 characters, at most 2000)."),
        (("add", "discord", "javascript:alert(1)"),
         "URL: Only http:// and https:// URLs can receive alerts, not “javascript”."),
        ((*HOOK, "--rules", "999999"), "--rules: Rule 999999 doesn't exist."),
        ((*HOOK, "--rules", "1,²"), "--rules: “²” is not a rule id (a number)."),
        ((*HOOK, "--side", "long"),
         "--side: “long” is not a side: use buy, sell or leave it empty."),
        ((*HOOK, "--symbols", "AAPL,$$"),
         "--symbols: “$$” is not a valid symbol: use letters, digits, '.' or a space."),
        ((*HOOK, "--secret", "x\x00y"), "--secret: The secret can't contain a NUL character."),
        ((*HOOK, "--name", "a\nb"), "--name: The name can't contain control characters."),
        (("add", "telegram", "--token", "nope", "--chat-id", "1"),
         "--token: A Telegram bot token looks like 123456789:AAE… (from @BotFather)."),
        (("add", "telegram", "--token", TOKEN, "--chat-id", "1", "--api-url", "ftp://x"),
         "--api-url: Only http:// and https:// URLs can receive alerts, not “ftp”."),
        (("add", "telegram", "--chat-id", "1"),
         "Error: the following arguments are required: --token"),
        (("add", "sms", "123"), "Error: argument KIND: invalid choice: 'sms' (choose from "
                                "'webhook', 'telegram', 'discord')"),
        (("add", "webhook"), "Error: the following arguments are required: URL"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_2_and_stores_nothing(args, line):
    assert str(refused(*args)) == line


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "line"),
    [
        (None, "--template {file}: no such file."),
        ("DIR", "--template {file}: is a directory, not a file."),
        (b"{\"a\": \"\xff\"}", "--template {file}: not UTF-8 text (byte 8 can't be decoded)."),
        (b" " * 40_001, "--template {file}: too big (a template is at most 10000 characters)."),
        ('{"a": 1}' + " " * 10_000,
         "--template {file}: The template is too long (10008 characters, at most 10000)."),
        ('{"a": "{{symbol}}",\n  "b": }',
         "--template {file}: The template is not valid JSON once filled in: Expecting value "
         "at line 2, column 8."),
        ('{"p": {{price}}, "s": {{side}}}',
         "--template {file}: The template is not valid JSON once filled in: Expecting value "
         "at line 1, column 20 (a text placeholder such as {{symbol}}, {{side}}, {{rule_name}} "
         'or {{timestamp}} goes inside quotes: "{{symbol}}"; only {{price}}, {{rule_id}} and '
         "{{id}} may stand alone)."),
        ('{"x": "{{ticker}}"}',
         "--template {file}: Unknown placeholder “{{ticker}}” at line 1, column 8; use "
         "{{symbol}}, {{price}}, {{side}}, {{rule_name}}, {{rule_id}}, {{timestamp}}, {{id}}."),
    ],
)  # fmt: skip
def test_bad_template_file_is_one_line_naming_the_file(tmp_path, content, line):
    path = tmp_path / "t.json"
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert str(refused(*HOOK, "--template", str(path))) == line.replace("{file}", str(path))


@pytest.mark.django_db(transaction=True)
def test_the_real_command_line(tmp_path):
    """The real ``manage.py`` process on this test's database: exit codes and stderr lines."""
    result = manage("destinations", "add", "webhook", "http://127.0.0.1:9/hook", "--secret",
                    SECRET, "--rules", str(system_rule().pk))  # fmt: skip
    assert result.returncode == 0, result.stderr
    d = Destination.objects.get()
    assert result.stdout == f"Added destination {d.pk}\n"
    listing = manage("destinations", "list")
    assert listing.returncode == 0 and SECRET not in listing.stdout
    assert f"http://127.0.0.1:9/hook (signed, secret ••••{SECRET[-4:]})" in listing.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": }')
    for args, end in [
        (("add", "webhook", "file:///etc/passwd"), "not “file”."),
        (("add", "webhook", "http://x/", "--template", str(bad)), "line 1, column 7."),
        (("add", "webhook", "http://x/", "--template", str(tmp_path / "none")), "no such file."),
        (("add", "telegram", "--chat-id", "1"), "required: --token (see --help)"),
        (("add", "webhook", "http://x/", "--side", "up"), "use buy, sell or leave it empty."),
        (("remove", "77"), "There is no destination 77."),
    ]:
        assert one_line_exit_2(manage("destinations", *args)).endswith(end)
    assert list(Destination.objects.values_list("pk", flat=True)) == [d.pk]
    test = manage("destinations", "test", str(d.pk))  # nothing listens on port 9
    assert test.returncode == 1
    assert test.stderr.startswith(
        f"CommandError: Test to destination {d.pk} (Webhook 127.0.0.1) failed"
    )
    assert SECRET not in test.stdout + test.stderr
    assert manage("destinations", "remove", str(d.pk)).stdout == f"Removed destination {d.pk}\n"
    assert not Destination.objects.exists()


def test_the_examples_in_the_docs_work():
    """docs/alerts.md: its TradingView-like template passes the check, its signature check
    verifies what the sender signs."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    block = text.split("```json tradingview-template\n", 1)[1].split("```", 1)[0]
    services.template_check(block)
    filled = json.loads(services.render_template(block, services.sample_event(side="sell")))
    assert filled["ticker"] == "TEST" and filled["action"] == "sell" and filled["price"] == 123.45
    # The signature check it shows agrees with what the sender signs.
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(snippet, scope)  # noqa: S102 -- our own documentation
    body = b'{"id":1,"side":"buy"}'
    assert scope["verified"](b"k", body, transport.signature("k", body))
    assert not scope["verified"](b"k", body, transport.signature("other", body))
    assert not scope["verified"](b"k", body, None)
