"""The default channel layer: Channels' in-memory layer semantics, cheaper fan-out."""

import asyncio

import pytest

from scalpsite.layers import LocalChannelLayer


@pytest.fixture
def layer():
    return LocalChannelLayer(capacity=2, expiry=30)


async def test_group_send_reaches_every_member_once_with_its_own_copy(layer):
    names = [await layer.new_channel() for _ in range(3)]
    for name in names:
        await layer.group_add("feed", name)
    await layer.group_send("feed", {"type": "feed.event", "id": 7, "text": "{}"})
    got = [await asyncio.wait_for(layer.receive(name), 1) for name in names]
    assert got == [{"type": "feed.event", "id": 7, "text": "{}"}] * 3
    got[0]["id"] = 8
    assert got[1]["id"] == 7  # members never share one dict
    await layer.group_discard("feed", names[0])
    await layer.group_send("feed", {"type": "x"})
    assert await asyncio.wait_for(layer.receive(names[1]), 1) == {"type": "x"}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(names[0]), 0.05)


async def test_nested_messages_are_deep_copied(layer):
    name = await layer.new_channel()
    await layer.group_add("g", name)
    message = {"type": "x", "values": {"MA5": 1.0}}
    await layer.group_send("g", message)
    received = await layer.receive(name)
    message["values"]["MA5"] = 2.0
    assert received["values"] == {"MA5": 1.0}


async def test_a_full_member_misses_the_message_and_the_others_still_get_it(layer):
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for name in (slow, fast):
        await layer.group_add("g", name)
    for i in range(3):  # capacity 2: the third is dropped for the channel nobody reads
        await layer.group_send("g", {"type": "x", "n": i})
        assert (await layer.receive(fast))["n"] == i
    assert [(await layer.receive(slow))["n"] for _ in range(2)] == [0, 1]


async def test_expired_messages_are_swept(layer, monkeypatch):
    layer.expiry = -1  # every message is already expired
    name = await layer.new_channel()
    await layer.group_add("g", name)
    await layer.send(name, {"type": "old"})
    layer._next_sweep = 0.0
    layer._clean_expired()
    assert name not in layer.channels and name not in layer.groups.get("g", {})


async def test_attached_members_get_group_messages_directly_in_order(layer):
    got, queued = [], await layer.new_channel()
    direct = await layer.new_channel()

    async def deliver(message):
        got.append(message["n"])

    layer.attach(direct, deliver)
    for name in (direct, queued):
        await layer.group_add("g", name)
    for n in range(3):
        await layer.group_send("g", {"type": "x", "n": n})
    assert got == [0, 1, 2]
    assert direct not in layer.channels  # nothing queued for it
    assert (await layer.receive(queued))["n"] == 0
    layer.detach(direct)
    await layer.group_send("g", {"type": "x", "n": 3})
    assert got == [0, 1, 2] and (await layer.receive(direct))["n"] == 3


async def test_a_failing_direct_member_does_not_stop_the_others(layer):
    first, second, got = await layer.new_channel(), await layer.new_channel(), []

    async def broken(message):
        raise RuntimeError("socket gone")

    async def deliver(message):
        got.append(message)

    layer.attach(first, broken)
    layer.attach(second, deliver)
    for name in (first, second):
        await layer.group_add("g", name)
    await layer.group_send("g", {"type": "x"})
    assert got == [{"type": "x"}]


async def test_group_messages_keep_one_order_for_every_member_while_the_fanout_yields(layer):
    """The fan-out lets the server write between members; a second group message waits for
    the first to reach everyone, so no member sees them swapped."""
    names = [await layer.new_channel() for _ in range(12)]
    got: dict[str, list[int]] = {name: [] for name in names}

    def collector(name):
        async def deliver(message):
            if message["n"] == 0:  # a slow first send: the next message must not overtake it
                for _ in range(3):
                    await asyncio.sleep(0)
            got[name].append(message["n"])

        return deliver

    for name in names:
        layer.attach(name, collector(name))
        await layer.group_add("g", name)
    await asyncio.gather(*(layer.group_send("g", {"type": "x", "n": n}) for n in range(5)))
    assert all(seq == [0, 1, 2, 3, 4] for seq in got.values())
