"""Server-sent events as the OpenAI API streams them: `data: {json}\\n\\n` chunks, then `data: [DONE]\\n\\n`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

DONE = "data: [DONE]\n\n"


def event(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


class SSEResponse(StreamingResponse):
    """A stream that runs on_close however it ends: finished, failed, or cancelled because the client
    went away. Starlette cancels the body iterator where it waits; when it waits in `send` instead, the
    iterator's own `finally` would run only when garbage collected, so on_close is called here too."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()
