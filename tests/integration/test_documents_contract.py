"""One contract for the document store port: PostgreSQL, MongoDB (FerretDB) and in-memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fairstream.bootstrap import connect_pool
from fairstream.settings import Settings
from projections.documents import (
    DocumentChange,
    DocumentStore,
    DocumentStoreError,
    InMemoryDocumentStore,
    MongoDocumentStore,
    PostgresDocumentStore,
    Update,
)
from projections.runner import Position

pytestmark = pytest.mark.integration

C = "things"
T = "t-x.some.topic"


def at(offset: int, partition: int = 0, topic: str = T) -> Position:
    """Return a position on the test topic."""
    return Position(topic, partition, offset)


@pytest.fixture(params=["postgres", "mongo", "memory"])
async def store(
    request: pytest.FixtureRequest, isolated_settings: Settings, pg_schema: str
) -> AsyncIterator[DocumentStore]:
    """Yield an empty store of each backend; drop what it created after."""
    if request.param == "memory":
        memory = InMemoryDocumentStore()
        await memory.ensure_collection(C, ("kind", "n"))
        yield memory
    elif request.param == "postgres":
        pool = await connect_pool(isolated_settings)
        pg = PostgresDocumentStore(pool)
        await pg.ensure_collection(C, ("kind", "n"))
        try:
            yield pg
        finally:
            await pool.close()
    else:
        database = f"t_{uuid.uuid4().hex[:12]}"
        mongo = MongoDocumentStore.connect(isolated_settings.mongo_url, database)
        await mongo.ensure_collection(C, ("kind", "n"))
        try:
            yield mongo
        finally:
            from motor.motor_asyncio import AsyncIOMotorClient

            client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(isolated_settings.mongo_url)
            await client.drop_database(database)
            client.close()
            await mongo.close()


class TestDocumentStoreContract:
    """Hold every backend to the same behaviour."""

    async def test_apply_creates_and_get_returns_without_positions(
        self, store: DocumentStore
    ) -> None:
        assert await store.get(C, "a") is None
        applied = await store.apply(
            C, "a", at(3), {"$set": {"kind": "x", "nested.deep.v": 1.5, "list": [1, "two"]}}
        )
        assert applied is True
        assert await store.get(C, "a") == {
            "_id": "a",
            "kind": "x",
            "nested": {"deep": {"v": 1.5}},
            "list": [1, "two"],
        }

    async def test_redelivered_or_older_position_changes_nothing(
        self, store: DocumentStore
    ) -> None:
        update: Update = {"$inc": {"n": 1}, "$set": {"last": "x"}}
        assert await store.apply(C, "a", at(5), update) is True
        assert await store.apply(C, "a", at(5), update) is False
        assert (
            await store.apply(C, "a", at(4), {"$inc": {"n": 1}, "$set": {"last": "old"}}) is False
        )
        assert await store.get(C, "a") == {"_id": "a", "n": 1, "last": "x"}
        assert await store.apply(C, "a", at(6), update) is True
        assert (await store.get(C, "a") or {})["n"] == 2

    async def test_positions_are_per_partition_and_topic(self, store: DocumentStore) -> None:
        assert await store.apply(C, "a", at(10, partition=0), {"$inc": {"n": 1}})
        assert await store.apply(C, "a", at(2, partition=1), {"$inc": {"n": 1}})
        assert await store.apply(C, "a", at(1, topic="t-x.other"), {"$inc": {"n": 1}})
        assert not await store.apply(C, "a", at(2, partition=1), {"$inc": {"n": 1}})
        assert (await store.get(C, "a") or {})["n"] == 3

    async def test_positions_are_per_document(self, store: DocumentStore) -> None:
        assert await store.apply(C, "a", at(7), {"$set": {"v": 1}})
        assert await store.apply(C, "b", at(3), {"$set": {"v": 2}})
        assert [d["_id"] for d in await store.find(C)] == ["a", "b"]

    async def test_set_on_insert_inc_and_unset(self, store: DocumentStore) -> None:
        first: Update = {"$setOnInsert": {"created": "first"}, "$set": {"v": 1, "gone": True}}
        assert await store.apply(C, "a", at(1), first)
        second: Update = {
            "$setOnInsert": {"created": "second"},
            "$inc": {"count.total": 2, "f": 0.5},
            "$unset": {"gone": ""},
        }
        assert await store.apply(C, "a", at(2), second)
        assert await store.get(C, "a") == {
            "_id": "a",
            "created": "first",
            "v": 1,
            "count": {"total": 2},
            "f": 0.5,
        }

    async def test_set_replaces_nested_maps_and_keeps_siblings(self, store: DocumentStore) -> None:
        await store.apply(C, "a", at(1), {"$set": {"m.x%2Ey": {"s": 1}, "m.z": {"s": 2}}})
        await store.apply(C, "a", at(2), {"$set": {"m.x%2Ey": {"s": 3}}})
        assert (await store.get(C, "a") or {})["m"] == {"x%2Ey": {"s": 3}, "z": {"s": 2}}

    async def test_find_filters_sorts_and_limits(self, store: DocumentStore) -> None:
        rows = [
            ("a", "x", 3, "2025-06-01"),
            ("b", "y", 1, "2025-06-02"),
            ("c", "x", 2, "2025-06-03"),
            ("d", "x", 5, "2025-06-04"),
        ]
        for offset, (doc_id, kind, n, day) in enumerate(rows):
            await store.apply(C, doc_id, at(offset), {"$set": {"kind": kind, "n": n, "day": day}})
        ids = [d["_id"] for d in await store.find(C, {"kind": "x"}, sort=[("n", -1)])]
        assert ids == ["d", "a", "c"]
        ranged = await store.find(C, {"day": {"$gte": "2025-06-02", "$lt": "2025-06-04"}})
        assert [d["_id"] for d in ranged] == ["b", "c"]
        assert [d["_id"] for d in await store.find(C, {"n": {"$in": [1, 5]}})] == ["b", "d"]
        assert [
            d["_id"] for d in await store.find(C, {"n": {"$gt": 1}}, sort=[("n", 1)], limit=2)
        ] == [
            "c",
            "a",
        ]
        assert [d["_id"] for d in await store.find(C, {"_id": "c"})] == ["c"]
        assert await store.find(C, {"kind": "nope"}) == []
        found = await store.find(C, {"kind": "y"})
        assert found == [{"_id": "b", "kind": "y", "n": 1, "day": "2025-06-02"}]

    async def test_stored_positions_round_trip(self, store: DocumentStore) -> None:
        assert await store.stored_positions("p1") == {}
        await store.save_position("p1", T, 0, 10)
        await store.save_position("p1", T, 1, 4)
        await store.save_position("p1", T, 0, 12)
        await store.save_position("p2", T, 0, 99)
        assert await store.stored_positions("p1") == {(T, 0): 12, (T, 1): 4}

    async def test_batch_applies_through_the_same_contract(self, store: DocumentStore) -> None:
        async with store.batch() as tx:
            assert await tx.apply(C, "a", at(1), {"$inc": {"n": 1}})
            assert not await tx.apply(C, "a", at(1), {"$inc": {"n": 1}})
            await tx.save_position("p", T, 0, 2)
        assert (await store.get(C, "a") or {})["n"] == 1
        assert await store.stored_positions("p") == {(T, 0): 2}

    async def test_rejects_unsupported_updates(self, store: DocumentStore) -> None:
        with pytest.raises(DocumentStoreError):
            await store.apply(C, "a", at(1), {"$push": {"l": 1}})
        with pytest.raises(DocumentStoreError):
            await store.apply("Bad-Name", "a", at(1), {"$set": {"v": 1}})

    async def test_apply_many_equals_applying_one_by_one(self, store: DocumentStore) -> None:
        await store.ensure_collection("others")
        await store.apply(C, "old", at(5), {"$set": {"v": "stored"}, "$inc": {"n": 1}})
        changes = [
            DocumentChange(C, "new", at(6), {"$setOnInsert": {"c": 1}, "$inc": {"n": 1}}),
            DocumentChange(C, "old", at(4), {"$set": {"v": "older"}, "$inc": {"n": 1}}),
            DocumentChange(C, "old", at(7), {"$set": {"v": "newer"}, "$inc": {"n": 1}}),
            DocumentChange(C, "new", at(8), {"$setOnInsert": {"c": 2}, "$inc": {"n": 1}}),
            DocumentChange(C, "new", at(8), {"$inc": {"n": 100}}),  # same position again
            DocumentChange(C, "new", at(1, partition=1), {"$unset": {"c": ""}}),
            DocumentChange("others", "o", at(9), {"$set": {"k": [1, {"x": "y"}]}}),
        ]
        applied = await store.apply_many(changes)
        assert applied == [True, False, True, True, False, True, True]
        assert await store.get(C, "new") == {"_id": "new", "n": 2}
        assert await store.get(C, "old") == {"_id": "old", "v": "newer", "n": 2}
        assert await store.get("others", "o") == {"_id": "o", "k": [1, {"x": "y"}]}
        # Re-delivering the whole batch changes nothing.
        assert await store.apply_many(changes) == [False] * len(changes)
        assert await store.get(C, "new") == {"_id": "new", "n": 2}

    async def test_apply_many_in_a_batch_with_the_position(self, store: DocumentStore) -> None:
        changes = [DocumentChange(C, f"d{i % 3}", at(i), {"$inc": {"n": 1}}) for i in range(9)]
        async with store.batch() as tx:
            assert await tx.apply_many(changes) == [True] * 9
            await tx.save_position("p", T, 0, 9)
        assert await tx.apply_many([]) == []
        assert [d["n"] for d in await store.find(C, sort=[("_id", 1)])] == [3, 3, 3]
        assert await store.stored_positions("p") == {(T, 0): 9}

    async def test_apply_many_keeps_each_documents_order_across_many(
        self, store: DocumentStore
    ) -> None:
        # More documents than the MongoDB adapter writes at once, each with several changes:
        # a change applied before an earlier one of its document would fail its guard.
        changes = [
            DocumentChange(C, f"d{i % 40}", at(i), {"$set": {"last": i}, "$inc": {"n": 1}})
            for i in range(200)
        ]
        changes.insert(100, DocumentChange(C, "d3", at(3), {"$inc": {"n": 50}}))  # re-sent
        expected = [True] * 201
        expected[100] = False
        assert await store.apply_many(changes) == expected
        docs = await store.find(C, sort=[("_id", 1)])
        assert len(docs) == 40
        assert all(d["n"] == 5 and d["last"] == 160 + int(d["_id"][1:]) for d in docs), docs

    async def test_apply_many_checks_every_change_before_writing(
        self, store: DocumentStore
    ) -> None:
        changes = [
            DocumentChange(C, "a", at(1), {"$set": {"v": 1}}),
            DocumentChange(C, "b", at(2), {"$push": {"l": 1}}),
        ]
        with pytest.raises(DocumentStoreError):
            await store.apply_many(changes)
        assert await store.find(C) == []

    async def test_apply_many_rejects_unsupported_updates(self, store: DocumentStore) -> None:
        with pytest.raises(DocumentStoreError):
            await store.apply_many([DocumentChange(C, "a", at(1), {"$push": {"l": 1}})])
        with pytest.raises(DocumentStoreError):
            await store.apply_many([DocumentChange("Bad-Name", "a", at(1), {"$set": {"v": 1}})])

    async def test_an_event_id_applies_once_whatever_its_position(
        self, store: DocumentStore
    ) -> None:
        update: Update = {"$inc": {"n": 1}, "$set": {"last": "first"}}
        assert await store.apply(C, "a", at(5), update, "e-1") is True
        again: Update = {"$inc": {"n": 1}, "$set": {"last": "again"}}
        assert await store.apply(C, "a", at(9), again, "e-1") is False  # re-emitted later
        assert await store.apply(C, "a", at(0, partition=1), again, "e-1") is False
        assert await store.get(C, "a") == {"_id": "a", "n": 1, "last": "first"}
        assert await store.apply(C, "a", at(10), {"$inc": {"n": 1}}, "e-2") is True
        assert await store.apply(C, "a", at(10), {"$inc": {"n": 1}}, "e-3") is False  # position
        assert await store.apply(C, "b", at(11), {"$inc": {"n": 1}}, "e-1") is True  # per doc
        assert [(d["_id"], d["n"]) for d in await store.find(C)] == [("a", 2), ("b", 1)]

    async def test_apply_many_skips_event_ids_seen_in_the_batch_or_before(
        self, store: DocumentStore
    ) -> None:
        inc: Update = {"$inc": {"n": 1}}
        first = [
            DocumentChange(C, "a", at(1), inc, "e-1"),
            DocumentChange(C, "a", at(2), inc, "e-1"),  # same batch, new offset
            DocumentChange(C, "a", at(3), inc, "e-2"),
            DocumentChange(C, "b", at(4), inc, "e-1"),
        ]
        async with store.batch() as tx:
            assert await tx.apply_many(first) == [True, False, True, True]
            await tx.save_position("p", T, 0, 5)
        second = [
            DocumentChange(C, "a", at(6), inc, "e-2"),  # another batch, new offset
            DocumentChange(C, "a", at(0, partition=1), inc, "e-1"),
            DocumentChange(C, "a", at(7), inc, "e-3"),
            DocumentChange(C, "a", at(8), inc),  # no id: the position guard only
        ]
        assert await store.apply_many(second) == [False, False, True, True]
        assert [(d["_id"], d["n"]) for d in await store.find(C)] == [("a", 4), ("b", 1)]
        assert await store.get(C, "a") == {"_id": "a", "n": 4}

    async def test_set_if_newer_keeps_the_newest_whatever_the_order(
        self, store: DocumentStore
    ) -> None:
        def score(key: str, value: int) -> Update:
            return {"$inc": {"n": 1}, "$setIfNewer": {"s.x%2Ey": [key, {"v": value}]}}

        assert await store.apply(C, "a", at(1), score("2025-01-02|b", 2), "e-2")
        assert await store.apply(C, "a", at(2), score("2025-01-01|z", 1), "e-1")  # older
        assert await store.apply(C, "a", at(3), score("2025-01-02|a", 3), "e-3")  # tie: id
        assert await store.get(C, "a") == {"_id": "a", "n": 3, "s": {"x%2Ey": {"v": 2}}}
        assert await store.apply(C, "a", at(4), score("2025-01-02|c", 4), "e-4")
        assert (await store.get(C, "a") or {})["s"] == {"x%2Ey": {"v": 4}}
        # The other order, in one batch: the same document.
        changes = [
            DocumentChange(C, "b", at(5 + i), score(k, v), f"e-{v}")
            for i, (k, v) in enumerate(
                [("2025-01-02|c", 4), ("2025-01-02|a", 3), ("2025-01-01|z", 1), ("2025-01-02|b", 2)]
            )
        ]
        assert await store.apply_many(changes) == [True] * 4
        assert await store.get(C, "b") == {"_id": "b", "n": 4, "s": {"x%2Ey": {"v": 4}}}
        assert [d["_id"] for d in await store.find(C, {"s.x%2Ey.v": 4})] == ["a", "b"]

    async def test_rejects_malformed_set_if_newer(self, store: DocumentStore) -> None:
        with pytest.raises(DocumentStoreError):
            await store.apply(C, "a", at(1), {"$setIfNewer": {"s": {"v": 1}}})
        with pytest.raises(DocumentStoreError):
            await store.apply(C, "a", at(1), {"$inc": {"n": 1}}, "bad.id")
