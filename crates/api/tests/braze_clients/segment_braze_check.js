// Segment's Braze destination (npm @segment/action-destinations, unchanged), action
// `upsertCatalogItem`, driven as its own tests drive it (`createTestIntegration(...).testAction`
// and `testBatchAction`) but with no HTTP mock: every request goes to catalogd. Upsert and delete
// mode, single and batched: every item is applied, and a batch holding one bad item fails that
// item alone (Segment retries the others, which then go in). Exits non-zero on the first
// difference. CATALOGD_URL and CATALOGD_TOKEN come from crates/api/tests/braze_clients.rs.
'use strict';
const assert = require('node:assert/strict');
const { createTestIntegration } = require('@segment/actions-core');
const Braze = require('@segment/action-destinations/dist/destinations/braze').default;

const url = process.env.CATALOGD_URL;
const token = process.env.CATALOGD_TOKEN;
const destination = createTestIntegration(Braze);
const settings = { app_id: 'catalogd', api_key: token, endpoint: url };

const itemMapping = {
  name: { '@path': '$.properties.name' },
  price: { '@path': '$.properties.price' },
  discontinued: { '@path': '$.properties.discontinued' },
  inception_date: { '@path': '$.properties.inception_date' },
  manufacturer: { '@path': '$.properties.manufacturer' },
};

function mapping(syncMode, batching) {
  return {
    onMappingSave: { outputs: { catalog_name: 'cars' } },
    item_id: { '@path': '$.properties.id' },
    item: itemMapping,
    enable_batching: batching,
    __segment_internal_sync_mode: syncMode,
  };
}

function car(id, extra = {}) {
  return {
    event: 'Car Updated',
    type: 'track',
    properties: {
      id,
      name: `Car ${id}`,
      price: 79999.99,
      discontinued: false,
      inception_date: '2012-06-22T04:00:00Z',
      manufacturer: 'Tesla',
      ...extra,
    },
  };
}

async function send(method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/// Waits until every job has finished (the native job list, whose quota polling cannot exhaust),
/// then checks through Braze's item reads (50 a minute) that every id in `present` is there and
/// every id in `absent` is not; answers the present items.
async function settled(present, absent) {
  const finished = ['completed', 'failed', 'cancelled'];
  for (let attempt = 0; ; attempt++) {
    const jobs = await send('GET', '/v1/jobs?limit=100');
    assert.equal(jobs.status, 200, JSON.stringify(jobs.body));
    if (jobs.body.data.every((job) => finished.includes(job.status))) break;
    assert.ok(attempt < 600, `jobs never finished: ${JSON.stringify(jobs.body.data)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const there = await Promise.all(present.map((id) => send('GET', `/catalogs/cars/items/${id}`)));
  const gone = await Promise.all(absent.map((id) => send('GET', `/catalogs/cars/items/${id}`)));
  assert.deepEqual(there.map((r) => r.status), present.map(() => 200), `present ${present}`);
  assert.deepEqual(gone.map((r) => r.status), absent.map(() => 404), `absent ${absent}`);
  return there.map((r) => r.body.items[0]);
}

async function single(syncMode, event) {
  const responses = await destination.testAction('upsertCatalogItem', {
    event,
    mapping: mapping(syncMode, false),
    settings,
    useDefaultMappings: false,
  });
  return responses;
}

async function batch(syncMode, events) {
  await destination.testBatchAction('upsertCatalogItem', {
    events,
    mapping: mapping(syncMode, true),
    settings,
    useDefaultMappings: false,
  });
  return destination.results[0].multistatus;
}

async function main() {
  // The catalog Segment's mapping hook would create (`createCatalog`: id first, then the columns).
  const fields = [
    { name: 'id', type: 'string' },
    { name: 'name', type: 'string' },
    { name: 'price', type: 'number' },
    { name: 'discontinued', type: 'boolean' },
    { name: 'inception_date', type: 'time' },
    { name: 'manufacturer', type: 'string' },
  ];
  const created = await send('POST', '/catalogs', { catalogs: [{ name: 'cars', description: 'Cars', fields }] });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  // Single events: PUT and DELETE /catalogs/cars/items/{id}.
  const put = await single('upsert', car('car001'));
  assert.equal(put[0].status, 200);
  assert.equal((await single('upsert', car('car002')))[0].status, 200);
  const [car001] = await settled(['car001', 'car002'], []);
  assert.deepEqual(car001, { id: 'car001', name: 'Car car001', price: 79999.99, discontinued: false, inception_date: '2012-06-22T04:00:00Z', manufacturer: 'Tesla' });
  const deleted = await single('delete', car('car002'));
  assert.equal(deleted[0].status, 202);
  await settled(['car001'], ['car002']);
  // Deleting what is not there: Braze's `item-not-found`, which the destination takes as done.
  await single('delete', car('car999'));
  assert.equal(destination.results.at(-1).data.status, 200);
  assert.equal(destination.results.at(-1).data.message, 'Could not find item');
  // A bad value, single: the event fails with catalogd's words and nothing is written.
  await assert.rejects(single('upsert', car('car003', { price: 'cheap' })), (error) => error.status === 400 && /coerce|converted/.test(error.message));

  // Batches: PUT and DELETE /catalogs/cars/items/ (trailing slash).
  const ids = ['car010', 'car011', 'car012'];
  const upserted = await batch('upsert', ids.map((id) => car(id)));
  assert.deepEqual(upserted.map((r) => r.status), [200, 200, 200]);
  await settled(ids, []);

  // One bad item: it alone fails for good (400); Braze refuses the whole request, so the
  // destination marks the others retryable, and their retry goes in.
  const mixed = await batch('upsert', [car('car020'), car('car021', { price: 'cheap' }), car('car022')]);
  assert.deepEqual(mixed.map((r) => r.status), [500, 400, 500], JSON.stringify(mixed));
  assert.equal(mixed[1].errortype, 'PAYLOAD_VALIDATION_FAILED');
  assert.equal(mixed[1].body.id, 'unable-to-coerce-value');
  assert.equal(mixed[0].errortype, 'RETRYABLE_ERROR');
  const retried = await batch('upsert', [car('car020'), car('car022')]);
  assert.deepEqual(retried.map((r) => r.status), [200, 200]);
  await settled(['car020', 'car022'], ['car021']);

  const removed = await batch('delete', ids.map((id) => car(id)));
  assert.deepEqual(removed.map((r) => r.status), [200, 200, 200]);
  await settled(['car001', 'car020', 'car022'], ids);

  const listed = await send('GET', '/catalogs');
  assert.equal(listed.body.catalogs[0].num_items, 3);
  console.log('segment braze destination: single and batched upsert and delete applied; a bad item failed alone');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
