// npm `braze-api` (unchanged) against catalogd: list the catalogs, page through a catalog's items
// (the client follows the `Link` header), get one item. Exits non-zero on the first difference.
// CATALOGD_URL and CATALOGD_TOKEN come from crates/api/tests/braze_clients.rs; the client comes
// from the cached node project the test installed (NODE_PATH).
'use strict';
const assert = require('node:assert/strict');
const { Braze } = require('braze-api');

const url = process.env.CATALOGD_URL;
const token = process.env.CATALOGD_TOKEN;
const braze = new Braze(url, token);

// braze-api reads catalogs only: the set-up writes with plain HTTP, as Braze's own examples do.
async function send(method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function main() {
  const fields = [
    { name: 'id', type: 'string' },
    { name: 'Name', type: 'string' },
    { name: 'Rating', type: 'number' },
  ];
  const created = await send('POST', '/catalogs', { catalogs: [{ name: 'restaurants', description: 'My Restaurants', fields }] });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const ids = Array.from({ length: 123 }, (_, i) => `restaurant${String(i).padStart(3, '0')}`);
  for (let start = 0; start < ids.length; start += 50) {
    const items = ids.slice(start, start + 50).map((id, i) => ({ id, Name: `Restaurant ${id}`, Rating: (start + i) % 5 }));
    const put = await send('PUT', '/catalogs/restaurants/items', { items });
    assert.equal(put.status, 202, JSON.stringify(put.body));
  }
  // The items are written by a job: wait until the last one is there.
  for (let attempt = 0; ; attempt++) {
    const last = await send('GET', `/catalogs/restaurants/items/${ids[ids.length - 1]}`);
    if (last.status === 200) break;
    assert.ok(attempt < 600, 'the items were never applied');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const listed = await braze.catalogs.synchronous.list();
  assert.equal(listed.message, 'success');
  assert.equal(listed.catalogs.length, 1);
  assert.equal(listed.catalogs[0].name, 'restaurants');
  assert.equal(listed.catalogs[0].description, 'My Restaurants');
  assert.deepEqual(listed.catalogs[0].fields, fields);
  assert.equal(listed.catalogs[0].num_items, ids.length);

  const seen = [];
  for await (const item of braze.catalogs.synchronous.items({ catalog_name: 'restaurants' })) {
    seen.push(item.id);
  }
  assert.deepEqual(seen, ids, 'every item once, in id order, across three pages');

  const one = await braze.catalogs.synchronous.item({ catalog_name: 'restaurants', item_id: 'restaurant007' });
  assert.deepEqual(one, { items: [{ id: 'restaurant007', Name: 'Restaurant restaurant007', Rating: 2 }], message: 'success' });

  await assert.rejects(
    braze.catalogs.synchronous.item({ catalog_name: 'restaurants', item_id: 'ghost' }),
    (error) => error.status === 404 && error.errors[0].id === 'item-not-found',
  );
  console.log(`braze-api: listed 1 catalog, paged ${seen.length} items, got one`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
