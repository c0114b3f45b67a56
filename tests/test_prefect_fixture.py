"""The shared Prefect server fixture really serves the API the client is pointed at."""

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate


async def test_client_reaches_fixture_server(prefect_api_url):
    async with get_client() as client:
        assert str(client.api_url).rstrip("/") == prefect_api_url
        limit_id = await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="fixture-smoke", limit=2)
        )
        read = await client.read_global_concurrency_limit_by_name("fixture-smoke")
        assert read.id == limit_id and read.limit == 2
