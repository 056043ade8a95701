"""PyPI `exponea-python-sdk` (Bloomreach Engagement's Python SDK, unchanged) against catalogd:
every catalog call it has. Exits non-zero on the first difference. CATALOGD_URL, CATALOGD_PROJECT,
CATALOGD_KEY_ID and CATALOGD_TOKEN come from crates/api/tests/bloomreach_sdk.rs."""

import os
import sys
import time

from exponea_python_sdk import Exponea
from exponea_python_sdk.exceptions import APIException

exponea = Exponea(
    os.environ["CATALOGD_PROJECT"],
    username=os.environ["CATALOGD_KEY_ID"],
    password=os.environ["CATALOGD_TOKEN"],
    url=os.environ["CATALOGD_URL"],
)
catalog = exponea.catalog


def settled(catalog_id, check):
    """Waits until the jobs behind the last writes are applied: `check` holds for the listing."""
    for _ in range(600):
        listing = catalog.get_catalog_items(catalog_id, {"count": 1000})
        if check(listing):
            return listing
        time.sleep(0.05)
    raise AssertionError("never settled: {}".format(listing))


def properties(listing):
    return {item["item_id"]: item["properties"] for item in listing["data"]}


catalog_id = catalog.create_catalog("My Products", ["title", "price"])
assert isinstance(catalog_id, str) and len(catalog_id) == 24, catalog_id
assert catalog.get_catalog_name(catalog_id) == "My Products"

for item_id, title, price in [("p1", "Red Shoe", 10), ("p2", "Blue Shoe", 20), ("p3", "Red Hat", 30)]:
    assert catalog.create_catalog_item(catalog_id, item_id, {"title": title, "price": price}) is True
listing = settled(catalog_id, lambda l: l["total"] == 3)
assert "catalog_id" not in listing["data"][0], listing
assert properties(listing)["p2"] == {"title": "Blue Shoe", "price": 20}

page = catalog.get_catalog_items(catalog_id, {"count": 2, "skip": 1})
assert [item["item_id"] for item in page["data"]] == ["p2", "p3"], page
assert (page["matched"], page["limit"], page["skip"], page["total"], page["matched_limited"]) == (3, 2, 1, 3, False), page
# The SDK declares fields by name only, so none is searchable: `query` looks in the item ids, and a
# `field` must be a searchable one (docs/compat/bloomreach.md).
found = catalog.get_catalog_items(catalog_id, {"query": "P", "order": "desc"})
assert [item["item_id"] for item in found["data"]] == ["p3", "p2", "p1"], found
try:
    catalog.get_catalog_items(catalog_id, {"query": "red", "field": "title"})
    raise AssertionError("a search in a field that is not searchable was accepted")
except APIException as error:
    assert "searchable" in str(error), error

assert catalog.update_catalog_item(catalog_id, "p1", {"price": 12}) is True
assert catalog.delete_catalog_item(catalog_id, "p2") is True
listing = settled(catalog_id, lambda l: l["total"] == 2 and properties(l).get("p1", {}).get("price") == 12)
assert properties(listing) == {"p1": {"title": "Red Shoe", "price": 12}, "p3": {"title": "Red Hat", "price": 30}}, listing

try:
    catalog.create_catalog_item(catalog_id, "p4", {"colour": "red"})
    raise AssertionError("a property the catalog does not define was accepted")
except APIException as error:
    assert "colour" in str(error), error

assert catalog.update_catalog_name(catalog_id, "Renamed Products", ["title", "price", "colour"]) is True
assert catalog.get_catalog_name(catalog_id) == "Renamed Products"
assert catalog.create_catalog_item(catalog_id, "p4", {"colour": "red"}) is True

assert catalog.delete_catalog_items(catalog_id) is True
settled(catalog_id, lambda l: l["total"] == 0)

assert catalog.delete_catalog(catalog_id) is True
try:
    catalog.get_catalog_name(catalog_id)
    raise AssertionError("a deleted catalog was found")
except APIException as error:
    assert "not found" in str(error), error

print("exponea-python-sdk: every catalog call answered as Bloomreach does")
sys.exit(0)
