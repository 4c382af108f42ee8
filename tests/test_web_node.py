"""A web-only node (`open-swe serve --no-worker`) imports no agent code (issue 12).

In a fresh interpreter, `open-swe serve --no-worker` runs as it would (settings from the
environment, the App, the sandbox provider, logging, the app), except that uvicorn's `run`
drives the app in-process: its lifespan starts (store, procrastinate queue, dashboard), it
answers /healthz and accepts a signed delivery, and stops. Then no LangChain, LangGraph,
deepagents or model SDK may be in `sys.modules`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest

from tests.runs.postgres_schema import postgres_schema
from tests.webhooks.conftest import SECRET, SLUG, labeled, seeded_github, signed_headers

AGENT = ("langchain", "langgraph", "deepagents", "anthropic", "openai")

_CHILD = """
import asyncio, json, os, sys

import httpx
import uvicorn

answers = []


def run(app, **_options):
    async def serve():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
                answers.append((await client.get("/healthz")).status_code)
                post = json.loads(os.environ["TEST_DELIVERY"])
                answer = await client.post(
                    "/webhooks/github", content=post["body"].encode(), headers=post["headers"]
                )
                answers.append(answer.status_code)

    asyncio.run(serve())


uvicorn.run = run  # everything else is what `open-swe serve --no-worker` does
from app.cli import main

code = main(["serve", "--no-worker"])
loaded = sorted(name for name in sys.modules if name.split(".")[0].startswith(AGENT))
print(json.dumps({"code": code, "answers": answers, "agent": loaded}))
"""


@pytest.mark.slow
@pytest.mark.postgres
async def test_serve_no_worker_imports_no_agent_code(tmp_path: Path) -> None:
    async with postgres_schema() as pg:
        with seeded_github() as gh:
            assert gh.private_key_pem is not None
            body = json.dumps(labeled("open-swe"))
            headers = signed_headers("issues", body.encode(), delivery="to-the-web-node")
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "OPEN_SWE_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": pg.url,
                "GITHUB_APP_ID": str(gh.app_id),
                "GITHUB_APP_PRIVATE_KEY": gh.private_key_pem.replace("\n", "\\n"),
                "GITHUB_WEBHOOK_SECRET": SECRET,
                "GITHUB_APP_SLUG": SLUG,
                "GITHUB_API_URL": gh.url,
                "GITHUB_WEB_URL": gh.web_url,
                "OPEN_SWE_SANDBOX": "local",
                "OPEN_SWE_ALLOW_UNCONFINED": "true",  # whether bubblewrap starts here is moot
                "TEST_DELIVERY": json.dumps({"body": body, "headers": headers}),
            }
            child = f"AGENT = {AGENT!r}\n{_CHILD}"
            root = Path(__file__).parents[1]
            done = await anyio.run_process(
                [sys.executable, "-c", child], cwd=root, env=env, check=False
            )
            err = done.stderr.decode()
            assert done.returncode == 0, err
            result = json.loads(done.stdout.decode().strip().splitlines()[-1])
            assert result["code"] == 0, err
            assert result["answers"] == [200, 202], err
            assert result["agent"] == [], result["agent"]
            # The node did its part: the delivery is durable, queued for a worker.
            delivery = await pg.store.delivery("to-the-web-node")
            assert delivery is not None
