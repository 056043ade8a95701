"""Klaviyo's official Python SDK (`klaviyo-api` on PyPI) against a running catalogd.

Run by crates/api/tests/klaviyo_sdk.rs with CATALOGD_URL (e.g. http://127.0.0.1:8080) and
CATALOGD_TOKEN (a key of a fresh project with catalogs:read and catalogs:write). The project has
no catalog at first: the SDK's first call (an item create job) makes catalogd create the one
`$default` maps to. Every Klaviyo call goes through the SDK, pointed at catalogd with its
`test_host` setting, once with the key as a private API key and once as an OAuth access token
(`Authorization: Bearer`), over every operation catalogd serves: the six job types (create, list
with a filter and the cursor, get with `include`) and the catalog reads. Exits non-zero (an
assertion or an SDK exception) on the first thing that does not work.
"""

import json
import os
import sys
import time
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


def new_item(external_id, title):
    return {
        "type": "catalog-item",
        "attributes": {
            "external_id": external_id,
            "title": title,
            "description": title + ", described",
            "url": "https://shop.example/" + external_id,
            "price": 42.5,
            "images": ["https://shop.example/%s.png" % external_id],
            "custom_metadata": {"Top Pick": True},
            "published": True,
        },
    }


def items_create_query(items):
    return {"data": {"type": "catalog-item-bulk-create-job", "attributes": {"items": {"data": items}}}}


def until_complete(read):
    """Reads a job until the runner has completed it."""
    for _ in range(400):
        job = read()
        if job.data.attributes.status == "complete":
            return job
        time.sleep(0.05)
    raise AssertionError("the job did not complete: %s" % job)


def listed(list_jobs, job_id):
    """Pages through a job type's complete jobs with a filter and the cursor; the job must be there."""
    seen = []
    cursor = None
    while True:
        page = list_jobs(filter='equals(status,"complete")', page_cursor=cursor)
        assert all(j.attributes.status == "complete" for j in page.data), page
        seen.extend(j.id for j in page.data)
        cursor = page.links.next
        if cursor is None:
            break
    assert job_id in seen, (job_id, seen)


def family(catalogs, tag):
    """Every job type and catalog read catalogd serves, through `catalogs` (one way of signing in)."""
    skus = ["%s-SKU-%d" % (tag, i) for i in range(3)]

    # Item create jobs, read with include=items.
    job = catalogs.bulk_create_catalog_items(items_create_query([new_item(s, "Shirt " + s) for s in skus]))
    assert job.data.type == "catalog-item-bulk-create-job", job
    done = until_complete(lambda: catalogs.get_bulk_create_catalog_items_job(job.data.id, include=["items"]))
    assert done.data.attributes.completed_count == 3, done
    assert sorted(i.id for i in done.included) == sorted(compound(s) for s in skus), done
    assert done.included[0].attributes.price == 42.5, done
    listed(catalogs.get_bulk_create_catalog_items_jobs, job.data.id)

    # Item update jobs: what they name changes, the rest stays.
    update = {
        "data": {
            "type": "catalog-item-bulk-update-job",
            "attributes": {"items": {"data": [
                {"type": "catalog-item", "id": compound(skus[0]), "attributes": {"title": "Blue shirt"}}
            ]}},
        }
    }
    job = catalogs.bulk_update_catalog_items(update)
    done = until_complete(lambda: catalogs.get_bulk_update_catalog_items_job(job.data.id, include=["items"]))
    assert [(i.attributes.title, i.attributes.url) for i in done.included] == [
        ("Blue shirt", "https://shop.example/" + skus[0])
    ], done
    listed(catalogs.get_bulk_update_catalog_items_jobs, job.data.id)

    # The synchronous item reads.
    item = catalogs.get_catalog_item(compound(skus[0]))
    assert item.data.attributes.title == "Blue shirt", item
    seen = []
    cursor = None
    while True:
        page = catalogs.get_catalog_items(page_cursor=cursor)
        seen.extend(i.id for i in page.data)
        cursor = page.links.next
        if cursor is None:
            break
    assert all(compound(s) in seen for s in skus), seen

    # Category create jobs, read with include=categories, and the category reads.
    category = tag + "-CAT"
    create = {
        "data": {
            "type": "catalog-category-bulk-create-job",
            "attributes": {"categories": {"data": [{
                "type": "catalog-category",
                "attributes": {"external_id": category, "name": "Shirts"},
                "relationships": {"items": {"data": [{"type": "catalog-item", "id": compound(s)} for s in skus[:2]]}},
            }]}},
        }
    }
    job = catalogs.bulk_create_catalog_categories(create)
    assert job.data.type == "catalog-category-bulk-create-job", job
    done = until_complete(lambda: catalogs.get_bulk_create_categories_job(job.data.id, include=["categories"]))
    assert [(c.id, c.attributes.name) for c in done.included] == [(compound(category), "Shirts")], done
    listed(catalogs.get_bulk_create_categories_jobs, job.data.id)
    assert catalogs.get_catalog_category(compound(category)).data.attributes.name == "Shirts"
    assert compound(category) in [c.id for c in catalogs.get_catalog_categories().data]

    # Category update jobs.
    update = {
        "data": {
            "type": "catalog-category-bulk-update-job",
            "attributes": {"categories": {"data": [
                {"type": "catalog-category", "id": compound(category), "attributes": {"name": "Blue shirts"}}
            ]}},
        }
    }
    job = catalogs.bulk_update_catalog_categories(update)
    done = until_complete(lambda: catalogs.get_bulk_update_categories_job(job.data.id, include=["categories"]))
    assert [c.attributes.name for c in done.included] == ["Blue shirts"], done
    listed(catalogs.get_bulk_update_categories_jobs, job.data.id)

    # Category delete jobs.
    delete = {
        "data": {
            "type": "catalog-category-bulk-delete-job",
            "attributes": {"categories": {"data": [{"type": "catalog-category", "id": compound(category)}]}},
        }
    }
    job = catalogs.bulk_delete_catalog_categories(delete)
    assert job.data.type == "catalog-category-bulk-delete-job", job
    until_complete(lambda: catalogs.get_bulk_delete_categories_job(job.data.id))
    listed(catalogs.get_bulk_delete_categories_jobs, job.data.id)
    try:
        catalogs.get_catalog_category(compound(category))
        raise AssertionError("a deleted category must be gone")
    except ApiException as error:
        assert error.status == 404, error

    # Item delete jobs.
    job = catalogs.bulk_delete_catalog_items(delete_query(skus))
    until_complete(lambda: catalogs.get_bulk_delete_catalog_items_job(job.data.id))
    listed(catalogs.get_bulk_delete_catalog_items_jobs, job.data.id)
    print("every job type and read through", tag)


def main():
    klaviyo = KlaviyoAPI(TOKEN, max_delay=10, max_retries=5, test_host=URL)
    catalogs = klaviyo.Catalogs

    # 0. The first call of a pure Klaviyo integration: the `$default` catalog is created for it.
    job = catalogs.bulk_create_catalog_items(items_create_query([new_item("ITEM-%d" % i, "Item %d" % i) for i in range(3)]))
    until_complete(lambda: catalogs.get_bulk_create_catalog_items_job(job.data.id))
    assert [c["name"] for c in native("GET", "/v1/catalogs")["data"]] == ["default"]
    native_job(
        "/v1/catalogs/default/categories/bulk-upsert",
        {"categories": [{"id": "APPAREL", "name": "Apparel", "item_ids": ["ITEM-0"]}]},
    )

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

    # 6. The whole family, with the key as a private API key and as an OAuth access token.
    family(catalogs, "KEY")
    oauth = KlaviyoAPI(api_key=None, access_token=TOKEN, max_delay=10, max_retries=5, test_host=URL)
    family(oauth.Catalogs, "OAUTH")

    print("klaviyo-api SDK: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
