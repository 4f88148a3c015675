"""Where a full catalog sync spends its time: HQ's page endpoint alone versus the agent's apply alone.

1. HQ in-process: `catalog.feed` + `catalog.render` for every page (no HTTP).
2. HQ over loopback HTTP: GET /v1/catalog pages with httpx, sequentially, no agent.
3. Agent apply alone: the pages fetched in 2 are parsed and written into PostgreSQL
   (`CatalogSync._apply_page`), no HTTP in the timed part.
Run: python bench/agent_sync_parts.py [--skus 100000] [--page 1000]
"""

from __future__ import annotations

import argparse
import os
import time

from agent_common import bench_world, bulk_catalog, postgres_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()
    import httpx

    from hq import catalog

    with bench_world() as (hq, site, site_url):
        bulk_catalog(hq, args.skus)
        token = site.licence_file.read_text().strip()
        cats = ["game", "phone"]

        t, cursor, pages = time.perf_counter(), None, 0
        while True:
            page = catalog.feed(hq.service, cats, cursor, args.page)
            catalog.render(page)
            pages, cursor = pages + 1, page["next_cursor"]
            if not page["has_more"]:
                break
        feed_s = time.perf_counter() - t
        print(f"HQ feed+render in-process : {feed_s:.2f}s for {pages} pages ({args.skus / feed_s:,.0f} SKUs/s)")

        bodies: list[bytes] = []
        with httpx.Client(base_url=hq.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            t, cursor = time.perf_counter(), None
            while True:
                resp = http.get("/v1/catalog", params={"limit": args.page, **({"cursor": cursor} if cursor else {})})
                resp.raise_for_status()
                bodies.append(resp.content)
                doc = resp.json()
                cursor = doc["next_cursor"]
                if not doc["has_more"]:
                    break
            http_s = time.perf_counter() - t
        print(f"HQ over HTTP (httpx)      : {http_s:.2f}s for {len(bodies)} pages ({args.skus / http_s:,.0f} SKUs/s), "
              f"{sum(map(len, bodies)) / 2**20:.1f} MB")

        from sitedb.migrate import upgrade

        upgrade(site_url)
        os.environ.update(site.env(metrics_port=0, sync_page_limit=args.page, log_level="WARNING"))
        from agent.hq_client import CatalogPage, decode
        from agent.runner import Agent
        from agent.settings import AgentSettings

        agent = Agent(AgentSettings())  # type: ignore[call-arg]
        from agent.sync import RuleIndex, SyncResult, load_rules, plan

        agent.start()
        rules = RuleIndex(load_rules(agent.engine))
        sync = agent.sync
        position = sync._position()

        res = SyncResult(mode="full")
        profiler = None
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        pg_cpu = postgres_cpu(agent.engine)
        t, cpu, pg0 = time.perf_counter(), time.process_time(), pg_cpu()
        parse_s = 0.0
        for body in bodies:
            t1 = time.perf_counter()
            page = decode(body, CatalogPage)
            parse_s += time.perf_counter() - t1
            position = sync._apply_page(position, plan(page, rules, position.full_generation or 0), res)
        apply_s, apply_cpu, apply_pg = time.perf_counter() - t, time.process_time() - cpu, pg_cpu() - pg0
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        print(f"agent parse+apply alone   : {apply_s:.2f}s ({args.skus / apply_s:,.0f} SKUs/s), "
              f"of it parsing {parse_s:.2f}s; CPU: agent {apply_cpu:.2f}s, PostgreSQL {apply_pg:.2f}s; "
              f"upserts={res.upserts}")
        agent.server.stop()
        agent.engine.dispose()
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
