"""The operators' web console: workflows by state, one workflow's story, dispatch, and the actions.

Run it with `python -m sayiir_client.console --server HOST:PORT` (it listens on 127.0.0.1:8080). It needs the
client's `console` extra (Starlette, Jinja2, uvicorn), which a worker does not install.
"""

from sayiir_client.console.cli import main

__all__ = ["main"]
