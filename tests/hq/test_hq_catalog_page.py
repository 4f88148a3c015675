"""The catalog page HQ sends equals the page HQ's Python feed describes, however the database writes it."""

from __future__ import annotations

import orjson

from hq import catalog


def seed_awkward_items(hq) -> None:  # type: ignore[no-untyped-def]
    hq.seed_item("game-1", name='点券 "金" \\ 卡 🎮', face_value_cents=10**12, price_cents=10**12 - 1)
    hq.seed_item("game-2", status="inactive", min_qty=2, max_qty=9)
    hq.seed_item("phone-1", category="phone", stock_kind="direct_topup", account_pattern=r'^1\d{10}$|"x"\\')
    hq.seed_item("video-1", category="video")  # not licensed: a tombstone for this site
    hq.seed_item("game-3")
    hq.seed_card_keys("game-1", 3)
    catalog.remove(hq.service, "test", "game-3")


def test_page_body_is_the_rendered_feed(hq_server):
    seed_awkward_items(hq_server)
    cats = ["game", "phone"]
    for limit in (1, 2, 10):
        cursor = None
        while True:
            page = catalog.feed(hq_server.service, cats, cursor, limit)
            body, tag = catalog.page_body(hq_server.service, cats, cursor, limit)
            assert orjson.loads(body) == page
            assert tag == catalog.page_body(hq_server.service, cats, cursor, limit)[1]  # stable for the same page
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
    items = {i["sku"]: i for i in orjson.loads(catalog.page_body(hq_server.service, cats, None, 100)[0])["items"]}
    assert items["game-1"]["stock"] == 3 and items["game-1"]["name"] == '点券 "金" \\ 卡 🎮'
    assert items["phone-1"]["stock"] is None and items["phone-1"]["account_pattern"] == r'^1\d{10}$|"x"\\'
    assert items["video-1"] == {"sku": "video-1", "version": items["video-1"]["version"], "deleted": True}
    assert items["game-3"]["deleted"] is True and items["game-2"]["status"] == "inactive"


def test_page_body_refuses_foreign_and_garbled_cursors(hq_server):
    import pytest

    from hq.errors import ApiError

    hq_server.seed_item("game-1")
    with pytest.raises(ApiError) as err:
        catalog.page_body(hq_server.service, ["game"], "not-a-cursor", 10)
    assert err.value.status == 400
    other = catalog.encode_cursor("another-epoch", 5)
    with pytest.raises(ApiError) as err:
        catalog.page_body(hq_server.service, ["game"], other, 10)
    assert err.value.status == 410
