"""The app as the server runs it (docker/start.sh: ``streamlit run app/serve.py``): the router
(streamlit_app.py) in an ``st.App`` that

- imports what the pages use before the server answers anything (:func:`warm`): the first
  import of torch, its lazily loaded parts, plotly and pandas holds the interpreter lock for
  seconds (C extensions initialising), which on a cold server stalled every visitor's page and
  the health check together;
- freezes what the warm-up loaded out of the garbage collector's way (and the server runs
  without Streamlit's full collection after every script run: runner.postScriptGC=false);
- adds security headers to every HTTP response (:class:`SecurityHeaders`): no framing by
  other sites, no MIME sniffing, no referrer (a shared ``?spec=`` link holds the model).

AppTest and ``streamlit run app/streamlit_app.py`` still run the router directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import time
from collections.abc import AsyncIterator

import streamlit as st
from starlette.middleware import Middleware

#: Headers on every HTTP response (not the WebSocket).
HEADERS = {
    b"x-frame-options": b"DENY",
    b"content-security-policy": b"frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every HTTP response that does not set them."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in HEADERS.items() if k not in have]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def warm() -> float:
    """Import what the pages use, and what torch loads lazily the first time a page needs it
    (an optimizer imports torch._dynamo; an image, PIL's plugins); returns the seconds taken."""
    t0 = time.perf_counter()
    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import torch
    from PIL import Image

    import cnnviz
    import cnnviz.render.erf_plots
    import cnnviz.render.lab_plots
    import cnnviz.render.plots
    import cnnviz.render.timing_plots
    from cnnviz import erf, labs, spec, timing, zoo  # noqa: F401

    Image.init()
    with torch.device("meta"):
        p = torch.nn.Parameter(torch.empty(1))
    torch.optim.AdamW([p])  # imports torch._dynamo
    cnnviz.analyze(zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    return time.perf_counter() - t0


@contextlib.asynccontextmanager
async def _lifespan(_app) -> AsyncIterator[None]:
    took = await asyncio.to_thread(warm)
    # What the warm-up loaded (modules, classes, torch's op tables) lives as long as the
    # server: frozen, Python's collections no longer walk it (they hold the lock meanwhile).
    gc.collect()
    gc.freeze()
    print(f"cnnviz: warmed up in {took:.1f} s; {gc.get_freeze_count()} objects frozen", flush=True)
    yield


# The event loop answers every socket; at each socket call it gives up the interpreter lock and
# then waits for it behind the page runs, up to one switch interval each time (5 ms by
# default): with many pages running, seconds per health probe (the "convoy effect").
sys.setswitchinterval(float(os.environ.get("CNNVIZ_SWITCH_INTERVAL", "0.001")))

app = st.App("streamlit_app.py", lifespan=_lifespan, middleware=[Middleware(SecurityHeaders)])
