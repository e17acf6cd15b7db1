"""`/ws/engine/`: the worker's bridge into Daphne (events up, commands down)."""

from __future__ import annotations

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from signals import realtime
from signals.auth import engine_token_valid, token_from_scope

logger = logging.getLogger(__name__)


class EngineBridgeConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        if not await database_sync_to_async(engine_token_valid)(token_from_scope(self.scope)):
            await self.close()
            return
        await self.channel_layer.group_add(realtime.GROUP_ENGINE, self.channel_name)
        await self.accept()
        await realtime.bridge_connected()

    async def disconnect(self, code) -> None:
        await self.channel_layer.group_discard(realtime.GROUP_ENGINE, self.channel_name)

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale DB connections (a thread hop) before every handler; the
        # events need none (realtime's few queries hop to a thread themselves).
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            event = json.loads(text_data or bytes_data)
        except (ValueError, TypeError):
            logger.warning("bridge: dropped a frame that is not JSON")
            return
        if not isinstance(event, dict) or event.get("event") == "hello":
            return
        await realtime.publish(event)

    async def engine_command(self, message: dict) -> None:
        await self.send(text_data=json.dumps({"command": message["command"]}))
