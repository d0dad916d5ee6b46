"""trio_sink.redis on a Redis Cluster of three masters on loopback: streams sharded by
hash tag, each read and written on the node that holds its slot (``cluster=True``)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import pytest
from redis_helpers import RedisServer, running_redis_cluster

from trio_sink import Pipeline, Route
from trio_sink.redis import RedisStreamSink, RedisStreamSource, entry_parser


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with running_redis_cluster(tmp_path_factory.mktemp("cluster")) as servers:
        yield servers


@asynccontextmanager
async def cluster_client(url: str) -> AsyncIterator[coredis.RedisCluster[str]]:
    with warnings.catch_warnings():  # coredis 6.9's from_url warns about itself
        warnings.simplefilter("ignore", DeprecationWarning)
        client = coredis.RedisCluster.from_url(url, decode_responses=True)
    try:
        async with client:
            yield client
    finally:
        # coredis never closes the memory streams of a cluster client's layout.
        for value in vars(client.connection_pool.cluster_layout).values():
            for stream in value if isinstance(value, tuple) else ():
                if hasattr(stream, "close"):
                    stream.close()


def node_of(servers: list[RedisServer], key: str) -> int:
    """The index of the server that holds ``key``'s slot."""
    slot = servers[0].command("CLUSTER", "KEYSLOT", key)
    assert isinstance(slot, int)
    return slot * len(servers) // 16384


def tags_on_distinct_nodes(servers: list[RedisServer]) -> list[str]:
    by_node: dict[int, str] = {}
    for tag in "abcdefghijklmnopqrstuvwxyz":
        by_node.setdefault(node_of(servers, "{" + tag + "}"), tag)
    assert len(by_node) == len(servers)
    return [by_node[k] for k in sorted(by_node)]


@pytest.mark.parametrize("held", [False, True], ids=["connection-per-call", "held-pool"])
async def test_shards_on_every_node_are_read_written_and_acknowledged(
    cluster: list[RedisServer], held: bool
) -> None:
    url = cluster[0].url  # one node: the client learns where the others are
    async with cluster_client(url) as client:
        tags = tags_on_distinct_nodes(cluster)
        for tag in tags:
            await client.delete([f"orders:{{{tag}}}", f"charges:{{{tag}}}"])
            for i in range(100):
                await client.xadd(f"orders:{{{tag}}}", {"n": str(i), "shard": tag})
        for tag in tags:
            source = RedisStreamSource(
                url, f"orders:{{{tag}}}", group="billing", consumer="w1", cluster=True
            )
            sink = RedisStreamSink(url, f"charges:{{{tag}}}", cluster=True)
            pipeline = Pipeline(
                source,
                parse=entry_parser(lambda entry: entry.fields),
                routes=[Route("charges", sink)],
                stop_after_records=100,
                batch_size=30,
            )
            async with AsyncExitStack() as stack:
                if held:
                    await stack.enter_async_context(source)
                    await stack.enter_async_context(sink)
                report = await pipeline.run()
            assert report.ok
            assert report.acknowledged == 100
            out = await client.xrange(f"charges:{{{tag}}}")
            assert [e.field_values["n"] for e in out] == [str(i) for i in range(100)]
            assert {e.field_values["shard"] for e in out} == {tag}
            summary: Any = await client.xpending(f"orders:{{{tag}}}", "billing")
            assert summary.pending == 0


def test_a_unix_socket_url_is_refused_for_a_cluster(tmp_path: Path) -> None:
    from trio_sink import ConfigError

    with pytest.raises(ConfigError, match="cluster=True"):
        RedisStreamSink(f"unix://{tmp_path}/redis.sock", "s", cluster=True)
    with pytest.raises(ConfigError, match="cluster must be a bool"):
        RedisStreamSink("redis://localhost", "s", cluster="yes")  # type: ignore[arg-type]
