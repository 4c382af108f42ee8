from tests.web.conftest import *  # noqa
from tests.web.conftest import sign_in, Runs
from tests.webhooks.conftest import MAINTAINER, Harness

async def test_smoke(web: Harness, runs: Runs) -> None:
    run = await runs.add("waiting")
    await sign_in(web.client, web.gh, MAINTAINER)
    page = await web.client.get("/")
    print(page.status_code, page.text[:3000])
    api = await web.client.get("/api/runs")
    print(api.status_code, api.text[:2000])
    page = await web.client.get(f"/runs/{run.id}")
    print(page.status_code, page.text[:6000])
