"""Klaviyo's official Python SDK (`klaviyo-api` on PyPI) against a running catalogd.

Run by crates/api/tests/klaviyo_sdk.rs with CATALOGD_URL (e.g. http://127.0.0.1:8080) and
CATALOGD_TOKEN (a key of a fresh project with catalogs:read and catalogs:write). The project's
catalog `default` and its items and categories are set up through catalogd's native API; every
Klaviyo call goes through the SDK, pointed at catalogd with its `test_host` setting. Exits non-zero
(an assertion or an SDK exception) on the first thing that does not work.
"""

import json
import os
import sys
import urllib.request

from klaviyo_api import KlaviyoAPI
from openapi_client.exceptions import ApiException

URL = os.environ["CATALOGD_URL"].rstrip("/")
TOKEN = os.environ["CATALOGD_TOKEN"]
JOBS = 130  # more than one page of 100


def native(method, path, body=None):
    """One call of catalogd's native API (set-up only)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def native_job(path, body):
    job = native("POST", path, body)["job"]
    done = native("GET", "/v1/jobs/%d?wait=30" % job["id"])
    assert done["status"] == "completed", done


def compound(external_id):
    return "$custom:::$default:::" + external_id


def delete_query(external_ids):
    return {
        "data": {
            "type": "catalog-item-bulk-delete-job",
            "attributes": {"items": {"data": [{"type": "catalog-item", "id": compound(i)} for i in external_ids]}},
        }
    }


def main():
    native("POST", "/v1/catalogs", {"name": "default"})
    native_job(
        "/v1/catalogs/default/items/bulk-upsert",
        {"items": [{"id": "ITEM-%d" % i, "fields": {"title": "Item %d" % i}} for i in range(3)]},
    )
    native_job(
        "/v1/catalogs/default/categories/bulk-upsert",
        {"categories": [{"id": "APPAREL", "name": "Apparel", "item_ids": ["ITEM-0"]}]},
    )

    klaviyo = KlaviyoAPI(TOKEN, max_delay=10, max_retries=5, test_host=URL)
    catalogs = klaviyo.Catalogs

    # 1. An item delete job (the SDK's current revision: {"items": {"data": [...]}}).
    created = catalogs.bulk_delete_catalog_items(delete_query(["ITEM-0", "ITEM-1"]))
    first_id = created.data.id
    assert created.data.type == "catalog-item-bulk-delete-job", created
    assert created.data.attributes.total_count == 2, created
    assert created.data.attributes.status in ("queued", "processing", "complete"), created
    print("created item delete job", first_id, created.data.attributes.status)

    # More than a page of them. The create quota is 75/s: the SDK's own retry on 429 (with an
    # integer Retry-After) carries it through.
    for i in range(JOBS):
        catalogs.bulk_delete_catalog_items(delete_query(["GONE-%d" % i]))

    # 2. One job, read back until the runner has completed it.
    for _ in range(100):
        job = catalogs.get_bulk_delete_catalog_items_job(first_id)
        if job.data.attributes.status == "complete":
            break
    assert job.data.attributes.status == "complete", job
    assert job.data.attributes.completed_count == 2, job
    assert job.data.attributes.completed_at is not None, job
    print("item delete job", first_id, "complete at", job.data.attributes.completed_at)

    # Sparse fieldsets: the SDK returns a plain dict for them.
    sparse = catalogs.get_bulk_delete_catalog_items_job(first_id, fields_catalog_item_bulk_delete_job=["status", "total_count"])
    assert sparse["data"]["attributes"] == {"status": "complete", "total_count": 2}, sparse

    # 3. List with a status filter, paging with `links.next` as the SDK documents it (the whole
    # URL as page_cursor), until every job has been seen.
    for _ in range(200):
        queued = catalogs.get_bulk_delete_catalog_items_jobs(filter="equals(status,'queued')")
        processing = catalogs.get_bulk_delete_catalog_items_jobs(filter='equals(status,"processing")')
        if not queued.data and not processing.data:
            break
    seen = []
    pages = 0
    cursor = None
    while True:
        page = catalogs.get_bulk_delete_catalog_items_jobs(filter='equals(status,"complete")', page_cursor=cursor)
        pages += 1
        assert len(page.data) <= 100, len(page.data)
        assert all(j.attributes.status == "complete" for j in page.data)
        seen.extend(j.id for j in page.data)
        cursor = page.links.next
        if cursor is None:
            break
    assert pages >= 2, pages
    assert len(seen) == len(set(seen)) == JOBS + 1, (len(seen), len(set(seen)))
    print("paged through", len(seen), "complete jobs in", pages, "pages")

    # The SDK's other cursor quirk (behind an https proxy it keeps the `=` after page[cursor]).
    first = catalogs.get_bulk_delete_catalog_items_jobs(filter='equals(status,"complete")')
    token = first.links.next.split("page%5Bcursor%5D=")[1].split("&")[0]
    second = catalogs.get_bulk_delete_catalog_items_jobs(
        filter='equals(status,"complete")', page_cursor="https://proxy.example/api/x?page%5Bcursor%5D=" + token
    )
    assert [j.id for j in second.data] == seen[100:200], "the https form of links.next pages the same way"

    # 4. A category update job, read with include=categories.
    update = {
        "data": {
            "type": "catalog-category-bulk-update-job",
            "attributes": {
                "categories": {
                    "data": [
                        {
                            "type": "catalog-category",
                            "id": compound("APPAREL"),
                            "attributes": {"name": "Clothing"},
                            "relationships": {"items": {"data": [{"type": "catalog-item", "id": compound("ITEM-2")}]}},
                        }
                    ]
                }
            },
        }
    }
    category_job = catalogs.bulk_update_catalog_categories(update)
    assert category_job.data.type == "catalog-category-bulk-update-job", category_job
    category_job_id = category_job.data.id
    got = catalogs.get_bulk_update_categories_job(category_job_id, include=["categories"])
    assert got.data.id == category_job_id, got
    assert got.included is not None, got
    relationships = got.data.relationships
    if relationships is not None and relationships.categories is not None and relationships.categories.data:
        assert relationships.categories.data[0].id == compound("APPAREL"), got
        assert [c.id for c in got.included] == [compound("APPAREL")], got
        assert got.included[0].attributes.external_id == "APPAREL", got
        print("category job", category_job_id, "includes", got.included[0].attributes.name)
    else:
        # catalogd drops a job's inputs once it has finished (see docs/compat/klaviyo.md).
        print("category job", category_job_id, "finished before it was read: no relationships to include")
    for _ in range(100):
        got = catalogs.get_bulk_update_categories_job(category_job_id, include=["categories"])
        if got.data.attributes.status == "complete":
            break
    assert got.data.attributes.status == "complete", got
    categories = native("GET", "/v1/catalogs/default/categories")["data"]
    assert [(c["id"], c["name"], c["item_ids"]) for c in categories] == [("APPAREL", "Clothing", ["ITEM-2"])], categories

    # 5. Errors arrive as the SDK's ApiException with Klaviyo's envelope.
    try:
        catalogs.get_bulk_delete_catalog_items_job("999999999")
        raise AssertionError("a missing job must be an error")
    except ApiException as error:
        assert error.status == 404, error
        assert json.loads(error.body)["errors"][0]["code"] == "not_found", error.body
    try:
        catalogs.bulk_delete_catalog_items(
            {"data": {"type": "catalog-item-bulk-delete-job", "attributes": {"items": {"data": [{"type": "catalog-item", "id": "NOT-COMPOUND"}]}}}}
        )
        raise AssertionError("a bad id must be an error")
    except ApiException as error:
        assert error.status == 400, error
        assert json.loads(error.body)["errors"][0]["source"]["pointer"] == "/data/attributes/items/data/0/id", error.body

    print("klaviyo-api SDK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
