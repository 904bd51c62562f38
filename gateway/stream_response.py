"""A streaming response that notices a client disconnect without a task group per stream.

Starlette's `StreamingResponse` runs an anyio task group per response (uvicorn announces
ASGI 2.3) so that one task can wait for `http.disconnect` while the other streams; its
cancel scopes cost more CPU than the relay itself (bench/README.md, "Second round").
Here one plain asyncio future waits on `receive()`, and a disconnect cancels the streaming
task directly: the relay sees the cancellation where it is waiting (usually on the upstream),
logs the exchange as 499 and closes the upstream connection, so a student stops generating.
"""

from __future__ import annotations

import asyncio

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send


class EventStreamResponse(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        finished = disconnected = False

        def on_message(future: asyncio.Future[Message]) -> None:
            nonlocal disconnected
            # After the last body message uvicorn answers `receive()` with http.disconnect too.
            if finished or future.cancelled() or future.exception() is not None:
                return
            if future.result()["type"] == "http.disconnect":
                disconnected = True
                task.cancel()

        watcher: asyncio.Future[Message] = asyncio.ensure_future(receive())
        watcher.add_done_callback(on_message)
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not disconnected:
                raise  # shutdown or a timeout: not ours to swallow
            task.uncancel()  # the client left and the relay logged it: a normal end
        finally:
            finished = True
            watcher.cancel()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()  # cancelled mid-send: the relay still logs the exchange
