"""The async InfluxDB sink against the real influxd: batches land, refusals and outages behave."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from ecgmon.errors import SinkError
from ecgmon.influx import InfluxClient
from ecgmon.settings import Settings
from ecgmon.stack import free_port
from streams.sink import InfluxSink

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("gzip", [False, True])
async def test_chunks_are_batched_and_stored(
    stack_settings: Settings, influx: InfluxClient, topic_prefix: str, gzip: bool
) -> None:
    s = stack_settings.model_copy(update={"influx_batch_points": 50, "influx_flush_ms": 20, "influx_gzip": gzip})
    sink = InfluxSink(s)
    assert (sink._headers.get("Content-Encoding") == "gzip") is gzip
    run = f"{topic_prefix}-gz{int(gzip)}"
    futures = []
    for chunk in range(20):
        lines = [f"sinktest,run={run} v={chunk * 100 + i}i {1_000_000 + chunk * 100 + i}" for i in range(10)]
        futures.append(await sink.write(lines))
    await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
    await sink.stop()
    assert influx.count(f"SELECT COUNT(v) FROM sinktest WHERE run = '{run}'") == 200
    assert sink.stats.points == 200 and 4 <= sink.stats.requests < 20  # several chunks per request, <= 50 points


async def test_a_refused_write_fails_for_good(stack_settings: Settings) -> None:
    sink = InfluxSink(stack_settings)
    future = await sink.write(["not line protocol at all"])
    with pytest.raises(SinkError) as info:
        await asyncio.wait_for(future, timeout=60)
    assert info.value.retriable is False
    await sink.stop()


async def test_unreachable_influx_retries_and_full_buffer_blocks(stack_settings: Settings) -> None:
    s = stack_settings.model_copy(
        update={
            "influx_url": f"http://127.0.0.1:{free_port()}",
            "influx_buffer_points": 2,
            "influx_flush_ms": 1,
            "influx_retry_max_s": 0.2,
        }
    )
    sink = InfluxSink(s)
    first = await sink.write(["m v=1i 1", "m v=2i 2"])
    blocked = asyncio.ensure_future(sink.write(["m v=3i 3"]))
    await asyncio.sleep(1.0)
    assert not first.done(), "a retriable failure keeps retrying"
    assert not blocked.done(), "a full buffer makes write wait"
    assert sink.stats.retries >= 1
    blocked.cancel()
    await sink.stop(timeout_s=2)
    with pytest.raises(SinkError) as info:
        first.result()
    assert info.value.retriable is True


def test_token_header_only_for_influx_2_and_never_shown(stack_settings: Settings) -> None:
    v1 = InfluxSink(stack_settings)
    v2 = InfluxSink(stack_settings.model_copy(update={"influx_version": 2, "influx_token": SecretStr("s3cret")}))
    assert "Authorization" not in v1._headers
    assert v2._headers["Authorization"] == "Token s3cret"
    assert "s3cret" not in repr(v2)
