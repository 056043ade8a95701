// The operator console in headless Chromium, against a running catalogd (tests/console.rs starts
// it and runs this script; exit 0 is a pass).
//
// Environment: CATALOGD_URL, CATALOGD_TOKEN (a key with every scope), PLAYWRIGHT_CORE (the
// installed package's directory), CHROMIUM (the browser), CONSOLE_WEBHOOKS ("1" when the server
// has the webhooks API and allows private receivers), CONSOLE_EVENTS ("1" when it serves
// GET /v1/events: the page must then follow it, not poll), CONSOLE_SCREENSHOTS (a directory: save
// screenshots there; unset: none).
'use strict';

const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require(process.env.PLAYWRIGHT_CORE);

const BASE = process.env.CATALOGD_URL;
const TOKEN = process.env.CATALOGD_TOKEN;
const WEBHOOKS = process.env.CONSOLE_WEBHOOKS === '1';
const EVENTS = process.env.CONSOLE_EVENTS === '1';
const SHOTS = process.env.CONSOLE_SCREENSHOTS || '';
// A generous bound for each wait: a slow CI machine, not the behaviour, decides how long it takes.
const WAIT_MS = 60000;

async function api(method, route, body) {
  const response = await fetch(BASE + route, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Creates a job and waits for it to end (the long poll), returning the finished job.
async function finished(jobId) {
  for (;;) {
    const job = await api('GET', `/v1/jobs/${jobId}?wait=20`);
    if (['completed', 'failed', 'cancelled'].includes(job.status)) return job;
  }
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.screenshot({ path: path.join(SHOTS, name) });
  console.log(`screenshot ${name}`);
}

function step(name) {
  console.log(`- ${name}`);
}

async function main() {
  // Set-up through the API: a catalog with items, a patch with two per-item failures.
  await api('POST', '/v1/catalogs', { name: 'shoes', description: 'The shoe range' });
  await api('POST', '/v1/catalogs', { name: 'later' });
  const items = Array.from({ length: 300 }, (_, i) => ({ id: `sku-${String(i).padStart(4, '0')}`, fields: { title: `Shoe ${i}`, price: 10 + (i % 50) } }));
  const upsert = await api('POST', '/v1/catalogs/shoes/items/bulk-upsert', { items, description: 'spring range' });
  assert.equal((await finished(upsert.job.id)).status, 'completed');
  const patch = await api('POST', '/v1/catalogs/shoes/items/bulk-patch', {
    items: [{ id: 'sku-0001', fields: { price: 99 } }, { id: 'gone-1', fields: { price: 1 } }, { id: 'gone-2', fields: { price: 1 } }],
  });
  const patched = await finished(patch.job.id);
  assert.equal(patched.failed_count, 2, JSON.stringify(patched));

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    // Offline machine: no background connections, no component updates, no sync.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  const failures = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (error) => failures.push(`page error: ${error.message}`));

    step('it loads and asks for a key');
    const served = await page.goto(`${BASE}/`);
    assert.equal(served.status(), 200);
    assert.match(served.headers()['content-security-policy'], /default-src 'none'/);
    await page.getByRole('heading', { name: 'Welcome' }).waitFor();
    const unlabelled = await page.$$eval('input, select', (els) => els.filter((e) => !e.labels || e.labels.length === 0).map((e) => e.outerHTML));
    assert.deepEqual(unlabelled, [], 'every field has a label');

    step('the key typed in is kept in sessionStorage, and the jobs are listed');
    await page.getByLabel('API key').fill(TOKEN);
    await page.getByLabel('API key').press('Enter');
    await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('catalogd.key')), TOKEN);
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
    const upsertRow = page.locator(`#job-rows tr[data-job-id="${upsert.job.id}"]`);
    await upsertRow.waitFor();
    assert.equal(await upsertRow.getAttribute('data-status'), 'completed');
    await page.locator(`#job-rows tr[data-job-id="${patch.job.id}"]`).waitFor();
    // The stream is asked for after the first listing, and its answer can come after the rows
    // (seen once in CI on SQLite, on a slower machine: the mode was still unset when read).
    const expectedMode = EVENTS ? 'stream' : 'poll';
    await page.waitForFunction((mode) => document.querySelector('#live').dataset.mode === mode, expectedMode)
      .catch(() => {});
    const liveMode = await page.locator('#live').getAttribute('data-mode');
    console.log(`  live updates: ${liveMode === 'stream' ? 'event stream' : 'polling'}`);
    assert.equal(liveMode, expectedMode);

    step('a bulk delete made after the page loaded appears and reaches completed, live');
    await page.evaluate(() => { window.notReloaded = true; });
    const ids = items.slice(0, 250).map((item) => item.id);
    const del = await api('POST', '/v1/catalogs/shoes/items/bulk-delete', { ids, description: 'discontinued' });
    const deleteRow = page.locator(`#job-rows tr[data-job-id="${del.job.id}"]`);
    await deleteRow.waitFor();
    await page.locator(`#job-rows tr[data-job-id="${del.job.id}"][data-status="completed"]`).waitFor();
    const bar = deleteRow.locator('progress');
    assert.equal(await bar.getAttribute('value'), '250');
    assert.equal(await bar.getAttribute('max'), '250');
    assert.match(await deleteRow.innerText(), /250 of 250 \(100%\)/);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the list was updated in place');
    await shot(page, 'console-jobs.png');

    step('the filters narrow the list');
    await page.getByLabel('Kind').selectOption('item_bulk_patch');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/#\/jobs\?kind=item_bulk_patch/);
    // The unfiltered list holds the patch's row too until the filtered one replaces it: wait for
    // the list to be that one row (a count taken at once could read either list, or none between).
    await page.waitForFunction((id) => {
      const rows = document.querySelectorAll('#job-rows tr');
      return rows.length === 1 && rows[0].dataset.jobId === String(id);
    }, patch.job.id);

    step('a filter the API refuses is reported, and the stream is not retried');
    await page.goto(`${BASE}/#/jobs?catalog=${encodeURIComponent('no spaces')}`);
    await page.locator('#flash', { hasText: '(invalid_query)' }).waitFor();
    if (EVENTS) await page.locator('#live', { hasText: 'No live updates.' }).waitFor();
    await page.goto(`${BASE}/#/jobs?kind=item_bulk_patch`);
    await page.locator(`#job-rows tr[data-job-id="${patch.job.id}"]`).waitFor();

    step("a job's detail shows its per-item errors");
    await page.getByRole('link', { name: `#${patch.job.id}`, exact: true }).click();
    await page.getByRole('heading', { name: new RegExp(`^Job #${patch.job.id}`) }).waitFor();
    await page.locator('#error-rows tr').nth(1).waitFor();
    const errors = await page.locator('#error-rows tr').allInnerTexts();
    assert.equal(errors.length, 2, errors.join('\n'));
    assert.ok(errors.every((row) => row.includes('item_not_found')), errors.join('\n'));
    assert.ok(errors.some((row) => row.includes('gone-1')) && errors.some((row) => row.includes('gone-2')), errors.join('\n'));
    assert.equal(await page.locator('#cancel-job').isDisabled(), true, 'a finished job cannot be cancelled');
    await shot(page, 'console-job.png');

    step('a scheduled job is cancelled from its page');
    const startAt = new Date(Date.now() + 3600 * 1000).toISOString();
    const scheduled = await api('POST', '/v1/catalogs/later/items/bulk-upsert', { items: [{ id: 'a', fields: {} }], start_at: startAt, description: 'next hour' });
    await page.goto(`${BASE}/#/jobs/${scheduled.job.id}`);
    await page.locator('#job-fields[data-status="scheduled"]').waitFor();
    page.once('dialog', (dialog) => dialog.accept());
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator('#job-fields[data-status="cancelled"]').waitFor();
    assert.equal(await page.locator('#cancel-job').isDisabled(), true);
    assert.equal((await api('GET', `/v1/jobs/${scheduled.job.id}`)).status, 'cancelled');

    step('the keyboard reaches the catalogs, and a catalog shows its items');
    await page.getByRole('link', { name: 'Catalogs' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Catalogs' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the new view');
    await page.getByRole('link', { name: 'shoes', exact: true }).click();
    await page.getByRole('heading', { name: 'Catalog shoes' }).waitFor();
    await page.locator('#catalog-fields dd').first().waitFor();
    assert.equal(await page.locator('#catalog-fields dd').first().innerText(), '50');
    await page.locator('#items tbody tr').nth(49).waitFor();
    assert.equal(await page.locator('#items tbody tr').count(), 50);
    assert.match(await page.locator('#items tbody tr').first().innerText(), /sku-0250/);
    await shot(page, 'console-catalog.png');

    if (WEBHOOKS) {
      step("a webhook added in the console shows its deliveries");
      const received = [];
      const receiver = http.createServer((request, response) => {
        let body = '';
        request.on('data', (chunk) => { body += chunk; });
        request.on('end', () => { received.push(body); response.writeHead(200).end('ok'); });
      });
      await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      try {
        const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
        await page.getByRole('link', { name: 'Webhooks' }).click();
        await page.getByRole('heading', { name: 'Webhooks', exact: true }).waitFor();
        await page.getByLabel('URL').fill(hookUrl);
        await page.getByLabel('Description').fill('console test receiver');
        await page.getByRole('button', { name: 'Add webhook' }).click();
        await page.locator('#webhook-secret').waitFor();
        assert.match(await page.locator('#webhook-secret').innerText(), /\S{16,}/);
        const hooks = (await api('GET', '/v1/webhooks')).webhooks;
        const hook = hooks.find((w) => w.url === hookUrl);
        assert.ok(hook, JSON.stringify(hooks));
        assert.deepEqual([...hook.events].sort(), ['job.completed', 'job.failed']);
        const job = await api('POST', '/v1/catalogs/shoes/items/bulk-delete', { ids: ['sku-0299'] });
        await finished(job.job.id);
        // Delivery is asynchronous: wait for the receiver's answer to be recorded.
        const deadline = Date.now() + WAIT_MS;
        for (;;) {
          const { deliveries } = await api('GET', `/v1/webhooks/${hook.id}/deliveries`);
          if (deliveries.some((d) => d.status === 'succeeded')) break;
          assert.ok(Date.now() < deadline, `no delivery succeeded: ${JSON.stringify(deliveries)}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        await page.getByRole('link', { name: hookUrl }).click();
        await page.getByRole('heading', { name: `Webhook ${hookUrl}` }).waitFor();
        const delivered = page.locator('#deliveries tbody tr[data-status="succeeded"]').first();
        await delivered.waitFor();
        const text = await delivered.innerText();
        assert.match(text, /job\.completed/);
        assert.match(text, /200/);
        assert.ok(received.length >= 1);
        await shot(page, 'console-webhook.png');
        // The events' series, emitted with the metrics macros, rendered by this process's /metrics.
        const metrics = await (await fetch(`${BASE}/metrics`)).text();
        const value = (series) => {
          const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
          assert.ok(line, `no ${series} in\n${metrics}`);
          return Number(line.slice(series.length + 1));
        };
        assert.ok(value('catalogd_webhook_deliveries_total{outcome="succeeded"}') >= 1);
        assert.ok(value('catalogd_webhook_delivery_lag_seconds_bucket{le="86400"}') >= 1, 'rendered as a histogram');
        // Present once a stream has opened (the page opened several); its value moves with them.
        assert.ok(Number.isFinite(value('catalogd_event_streams_open')));
      } finally {
        receiver.close();
      }
    } else {
      step('without the webhooks API, the page says so');
      await page.getByRole('link', { name: 'Webhooks' }).click();
      await page.getByText('This server has no webhooks API.').waitFor();
    }

    step('the page reads an event stream (a canned one, served by the browser) and resumes it with Last-Event-ID');
    {
      const tab = await browser.newPage({ viewport: { width: 1280, height: 860 } });
      tab.on('pageerror', (error) => failures.push(`page error: ${error.message}`));
      await tab.addInitScript((token) => sessionStorage.setItem('catalogd.key', token), TOKEN);
      const job = await api('GET', `/v1/jobs/${del.job.id}`);
      // Later than the stored job, so the page takes it over the one it read.
      const at = (n) => ({ ...job, status: 'running', completed_count: n, failed_count: 0, finished_at: null, updated_at: '2999-01-01T00:00:0' + (n % 10) + '.000Z' });
      const event = (id, n, jobId) => JSON.stringify({ id, type: 'job.progress', created_at: '2999-01-01T00:00:00.000Z', data: { job: { ...at(n), id: jobId } } });
      const first = event(41, 100, job.id);
      const split = first.indexOf('"data"');
      // CRLF and LF lines, comments, data over two lines, and then an event of another job.
      const canned = ': keep-alive\r\n\r\n'
        + `id: 41\r\nevent: job.progress\r\ndata: ${first.slice(0, split)}\r\ndata: ${first.slice(split)}\r\n\r\n`
        + `id: 42\nevent: job.progress\ndata: ${event(42, 173, job.id + 1000)}\n\n`
        + ': keep-alive\n\n';
      const requests = [];
      await tab.route('**/v1/events**', async (route) => {
        requests.push({ url: route.request().url(), headers: await route.request().allHeaders() });
        await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: canned });
      });
      await tab.goto(`${BASE}/#/jobs/${del.job.id}`);
      await tab.locator('#job-fields[data-status="running"]').waitFor();
      assert.match(await tab.locator('#job-fields').innerText(), /100 of 250/);
      // The canned body ends: the page reconnects from the last id it saw.
      for (const deadline = Date.now() + WAIT_MS; requests.length < 2;) {
        assert.ok(Date.now() < deadline, 'the page reconnects');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(requests[0].headers.authorization, `Bearer ${TOKEN}`);
      assert.match(requests[0].url, new RegExp(`[?&]job=${del.job.id}(&|$)`));
      assert.equal(requests[0].headers['last-event-id'], undefined);
      assert.equal(requests[1].headers['last-event-id'], '42');
      await tab.close();
    }

    step('forgetting the key clears it');
    await page.getByRole('button', { name: 'Forget' }).click();
    await page.getByRole('heading', { name: 'Welcome' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('catalogd.key')), null);
  } finally {
    await browser.close();
  }
  assert.deepEqual(failures, [], 'no script error in the page');
  console.log('console check passed');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
