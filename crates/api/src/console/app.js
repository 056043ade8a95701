// The catalogd operator console: one script, no build step, no dependencies.
//
// It speaks the native API with the key typed into the page (kept in sessionStorage, so it dies
// with the tab), routes by the URL's hash (#/jobs, #/jobs/{id}, #/catalogs, #/catalogs/{name},
// #/webhooks, #/webhooks/{id}), and follows jobs live through GET /v1/events. EventSource cannot
// send an Authorization header, so the stream is read with fetch() and parsed here; a server
// without the stream (404) is polled instead.
'use strict';

(() => {
  const KEY_STORAGE = 'catalogd.key';
  const STATUSES = ['scheduled', 'queued', 'running', 'completed', 'failed', 'cancelled'];
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const KINDS = ['item_bulk_delete', 'item_bulk_upsert', 'item_bulk_create', 'item_bulk_patch',
    'category_bulk_update', 'category_bulk_upsert', 'category_bulk_create', 'category_bulk_delete', 'catalog_delete'];
  const EVENT_TYPES = ['job.created', 'job.started', 'job.progress', 'job.completed', 'job.failed', 'job.cancelled'];
  const PAGE_SIZE = 50;
  const POLL_MS = 2000;
  const RECONNECT_MAX_MS = 10000;

  const main = document.getElementById('main');
  const liveLine = document.getElementById('live');
  const announceLine = document.getElementById('announce');
  const flashLine = document.getElementById('flash');
  const keyForm = document.getElementById('key-form');
  const keyInput = document.getElementById('api-key');

  let apiKey = sessionStorage.getItem(KEY_STORAGE) || '';
  // The view being shown; an async step of an older view checks it and stops.
  let currentView = null;

  // ---------------------------------------------------------------------------------------------
  // DOM helpers: every text goes in as text, never as HTML.

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
      else if (name === 'dataset') Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function time(value) {
    if (!value) return h('span', { class: 'empty' }, '—');
    const date = new Date(value);
    return h('time', { datetime: value, title: value }, Number.isNaN(date.getTime()) ? value : date.toLocaleString());
  }

  function number(n) {
    return typeof n === 'number' ? n.toLocaleString() : '—';
  }

  function statusBadge(status) {
    return h('span', { class: `status status-${status}`, dataset: { status } }, status);
  }

  function progress(job) {
    const done = job.completed_count + job.failed_count;
    const total = job.total_count;
    const percent = total > 0 ? Math.floor((done * 100) / total) : (FINAL.has(job.status) ? 100 : 0);
    const label = `${number(done)} of ${number(total)} (${percent}%)` + (job.failed_count ? `, ${number(job.failed_count)} failed` : '');
    return h('div', { class: 'progress' },
      h('progress', { max: Math.max(total, 1), value: total > 0 ? done : (FINAL.has(job.status) ? 1 : 0), 'aria-label': `Progress of job ${job.id}: ${label}` }),
      h('span', {}, label));
  }

  function flash(message) {
    flashLine.textContent = message;
    flashLine.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { flashLine.hidden = true; }, 8000);
  }

  // Tells screen readers that an action took effect (the page shows it by itself).
  function announce(text) {
    announceLine.textContent = text;
  }

  function setLive(mode, text) {
    liveLine.dataset.mode = mode;
    liveLine.textContent = text;
  }

  // ---------------------------------------------------------------------------------------------
  // The API.

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorOf(response) {
    let envelope = null;
    try { envelope = await response.json(); } catch { /* not JSON */ }
    const error = envelope && envelope.error;
    return new ApiError(response.status, error ? error.code : `http_${response.status}`,
      error ? error.message : (response.statusText || 'request failed'));
  }

  async function api(path, { method = 'GET', body, signal } = {}) {
    const headers = { Authorization: `Bearer ${apiKey}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method, headers, signal, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return null;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  function query(params) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== '') search.set(name, value);
    }
    const text = search.toString();
    return text ? `?${text}` : '';
  }

  // Shows what went wrong; a refused key sends the user back to the key field.
  function report(error, what) {
    if (error && error.name === 'AbortError') return;
    if (error instanceof ApiError && error.status === 401) {
      flash(`The key was refused: ${error.message}. Type another one.`);
      keyInput.focus();
      return;
    }
    flash(`${what}: ${error instanceof ApiError ? `${error.message} (${error.code})` : error}`);
  }

  // ---------------------------------------------------------------------------------------------
  // Live updates: Server-Sent Events read with fetch(), or polling when the server has no stream.

  // Calls `onMessage({id, type, data})` for each message of an SSE body, until it ends.
  async function readEventStream(body, onMessage) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let data = [];
    let type = '';
    let lastId = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let start = 0;
      for (let end = buffer.indexOf('\n', start); end >= 0; end = buffer.indexOf('\n', start)) {
        let line = buffer.slice(start, end);
        start = end + 1;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) onMessage({ id: lastId, type: type || 'message', data: data.join('\n') });
          data = [];
          type = '';
          continue;
        }
        if (line.startsWith(':')) continue; // a comment: the keep-alive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') type = value;
        else if (field === 'id' && !value.includes('\0')) lastId = value;
      }
      buffer = buffer.slice(start);
    }
  }

  // Follows the events matching `filters` and hands each job event to `onEvent`; `refresh`
  // re-reads what the view shows, after a reconnection that could not resume and, without a
  // stream, every POLL_MS.
  class Live {
    constructor(filters, onEvent, refresh) {
      this.filters = filters;
      this.onEvent = onEvent;
      this.refresh = refresh;
      this.abort = new AbortController();
      this.stopped = false;
      this.lastEventId = null;
      this.timer = null;
    }

    start() {
      this.follow();
      return this;
    }

    stop() {
      this.stopped = true;
      this.abort.abort();
      clearTimeout(this.timer);
    }

    async follow() {
      let delay = 500;
      let connections = 0;
      while (!this.stopped) {
        try {
          const headers = { Authorization: `Bearer ${apiKey}`, Accept: 'text/event-stream' };
          if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
          const response = await fetch(`/v1/events${query(this.filters)}`, { headers, signal: this.abort.signal, cache: 'no-store' });
          if (response.status === 404) return this.poll();
          if (!response.ok) throw await errorOf(response);
          connections += 1;
          setLive('stream', 'Live: following the event stream.');
          // Nothing to resume from: what changed while disconnected is read again.
          if (connections > 1 && this.lastEventId === null) this.refresh().catch((e) => report(e, 'Refreshing failed'));
          delay = 500;
          await readEventStream(response.body, (message) => {
            if (message.id !== null) this.lastEventId = message.id;
            let event;
            try { event = JSON.parse(message.data); } catch { return; }
            if (event && event.data && event.data.job) this.onEvent(event);
          });
        } catch (error) {
          if (this.stopped) return;
          // A key refused or without the scope, or a filter refused: retrying cannot help.
          if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
            setLive('', 'No live updates.');
            return report(error, 'The event stream');
          }
        }
        if (this.stopped) return;
        setLive('poll', 'The event stream was interrupted; reconnecting…');
        await new Promise((resolve) => { this.timer = setTimeout(resolve, delay); });
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    }

    poll() {
      setLive('poll', `This server has no event stream: refreshing every ${POLL_MS / 1000} s.`);
      const tick = async () => {
        if (this.stopped) return;
        try { await this.refresh(); } catch (error) { report(error, 'Refreshing failed'); }
        if (!this.stopped) this.timer = setTimeout(tick, POLL_MS);
      };
      this.timer = setTimeout(tick, POLL_MS);
    }
  }

  // Of two versions of a job, the later one (an event may overtake a page read, or follow it).
  function newer(a, b) {
    if (!a) return b;
    if (!b) return a;
    if (a.updated_at !== b.updated_at) return a.updated_at > b.updated_at ? a : b;
    return (a.completed_count + a.failed_count) >= (b.completed_count + b.failed_count) ? a : b;
  }

  // ---------------------------------------------------------------------------------------------
  // Views. Each returns nothing and fills `main`; `view.live` is stopped when another replaces it.

  function beginView(title) {
    if (currentView && currentView.live) currentView.live.stop();
    const view = { live: null, heading: h('h1', { tabindex: '-1' }, title) };
    currentView = view;
    setLive('', ''); // a view that follows nothing live says nothing
    flashLine.hidden = true; // an error of the view left behind is no longer news
    main.replaceChildren(view.heading);
    return view;
  }

  const isCurrent = (view) => view === currentView;

  function keyPrompt() {
    const view = beginView('Welcome');
    main.append(h('p', {}, 'Type an API key of your project above (it needs the ', h('code', {}, 'jobs:read'),
      ' and ', h('code', {}, 'catalogs:read'), ' scopes; cancelling and webhooks need ', h('code', {}, 'jobs:write'),
      '). Create one with ', h('code', {}, 'catalogd admin key create'), '.'));
    return view;
  }

  function jobRow(job) {
    return h('tr', { dataset: { jobId: job.id, status: job.status } },
      h('td', {}, h('a', { href: `#/jobs/${job.id}` }, `#${job.id}`)),
      h('td', {}, job.kind),
      h('td', {}, job.catalog ? h('a', { href: `#/catalogs/${encodeURIComponent(job.catalog)}` }, job.catalog) : '—'),
      h('td', {}, statusBadge(job.status)),
      h('td', {}, progress(job)),
      h('td', {}, time(job.created_at)));
  }

  function select(name, label, options, chosen) {
    const id = `filter-${name}`;
    return h('label', { for: id }, label,
      h('select', { id, name },
        h('option', { value: '' }, 'any'),
        options.map((option) => h('option', { value: option, selected: option === chosen }, option))));
  }

  function jobsView(params) {
    const view = beginView('Jobs');
    const filters = { status: params.get('status') || '', kind: params.get('kind') || '', catalog: params.get('catalog') || '' };
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
      select('status', 'Status', STATUSES, filters.status),
      select('kind', 'Kind', KINDS, filters.kind),
      h('label', { for: 'filter-catalog' }, 'Catalog', h('input', { id: 'filter-catalog', name: 'catalog', value: filters.catalog, size: 18 })),
      h('button', { type: 'submit' }, 'Apply'),
      h('a', { href: '#/jobs' }, 'Clear'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const data = new FormData(form);
      location.hash = `#/jobs${query({ status: data.get('status'), kind: data.get('kind'), catalog: data.get('catalog').trim() })}`;
    });
    const rows = h('tbody', { id: 'job-rows' });
    const table = h('table', { id: 'jobs' },
      h('caption', {}, 'Newest first. Progress follows the jobs live.'),
      h('thead', {}, h('tr', {}, ['Job', 'Kind', 'Catalog', 'Status', 'Progress', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
      rows);
    const more = h('button', { type: 'button', hidden: true }, 'Load more');
    const empty = h('p', { class: 'empty', hidden: true }, 'No job matches.');
    main.append(form, table, empty, more);

    const jobs = new Map(); // id → job shown
    let cursor = null;
    const matches = (job) => (!filters.status || job.status === filters.status)
      && (!filters.kind || job.kind === filters.kind)
      && (!filters.catalog || job.catalog === filters.catalog);
    const show = (job, where) => {
      const known = jobs.get(job.id);
      const latest = newer(known, job);
      jobs.set(job.id, latest);
      const row = jobRow(latest);
      const old = rows.querySelector(`tr[data-job-id="${job.id}"]`);
      if (old) old.replaceWith(row);
      else if (where === 'top') rows.prepend(row);
      else rows.append(row);
      empty.hidden = true;
    };
    const load = async (after) => {
      const page = await api(`/v1/jobs${query({ ...filters, limit: PAGE_SIZE, cursor: after })}`);
      if (!isCurrent(view)) return;
      page.data.forEach((job) => show(job, 'bottom'));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = jobs.size > 0;
    };
    more.addEventListener('click', () => load(cursor).catch((e) => report(e, 'Loading jobs failed')));
    // The first page again: new jobs go on top, the others are updated in place.
    const refresh = async () => {
      const page = await api(`/v1/jobs${query({ ...filters, limit: PAGE_SIZE })}`);
      if (!isCurrent(view)) return;
      for (const job of [...page.data].reverse()) show(job, jobs.has(job.id) ? 'keep' : 'top');
      empty.hidden = jobs.size > 0;
    };
    view.live = new Live({ catalog: filters.catalog }, (event) => {
      const job = event.data.job;
      if (jobs.has(job.id)) show(job, 'keep');
      else if (event.type === 'job.created' && matches(job)) show(job, 'top');
    }, refresh).start();
    load(null).catch((e) => report(e, 'Loading jobs failed'));
  }

  function jobView(id) {
    const view = beginView(`Job #${id}`);
    const details = h('dl', { class: 'fields', id: 'job-fields' });
    const cancel = h('button', { type: 'button', class: 'danger', id: 'cancel-job', disabled: true }, 'Cancel job');
    const errorRows = h('tbody', { id: 'error-rows' });
    const errorsMore = h('button', { type: 'button', hidden: true }, 'Load more errors');
    const errorsEmpty = h('p', { class: 'empty' }, 'No per-item error.');
    main.append(details, h('div', { class: 'actions' }, cancel),
      h('h2', { id: 'errors-heading' }, 'Per-item errors'),
      h('table', { id: 'job-errors', 'aria-labelledby': 'errors-heading' },
        h('thead', {}, h('tr', {}, ['Input', 'Item', 'Code', 'Title', 'Detail'].map((c) => h('th', { scope: 'col' }, c)))),
        errorRows),
      errorsEmpty, errorsMore);

    let job = null;
    let errorsCursor = null;
    let errorsFor = -1; // the failed_count the errors were read at
    const render = (next) => {
      job = newer(job, next);
      view.heading.replaceChildren(`Job #${job.id} `, statusBadge(job.status));
      const field = (name, value) => [h('dt', {}, name), h('dd', {}, value)];
      details.replaceChildren(
        ...field('Kind', job.kind),
        ...field('Catalog', job.catalog ? h('a', { href: `#/catalogs/${encodeURIComponent(job.catalog)}` }, job.catalog) : '—'),
        ...field('Status', statusBadge(job.status)),
        ...field('Progress', progress(job)),
        ...field('Completed', number(job.completed_count)),
        ...field('Failed', number(job.failed_count)),
        ...field('Description', job.description || '—'),
        ...field('Reference', job.reference_id || '—'),
        ...field('Created', time(job.created_at)),
        ...field('Starts at', time(job.start_at)),
        ...field('Started', time(job.started_at)),
        ...field('Finished', time(job.finished_at)),
        ...field('Purged after', time(job.expires_at)));
      details.dataset.status = job.status;
      // A catalog delete cannot be cancelled: it would leave a hidden catalog's data behind.
      cancel.disabled = FINAL.has(job.status) || job.kind === 'catalog_delete';
      if (job.failed_count !== errorsFor) loadErrors(null).catch((e) => report(e, 'Loading errors failed'));
    };
    const loadErrors = async (after) => {
      const seen = job.failed_count;
      const page = await api(`/v1/jobs/${encodeURIComponent(id)}/errors${query({ limit: PAGE_SIZE, cursor: after })}`);
      if (!isCurrent(view)) return;
      if (!after) { errorRows.replaceChildren(); errorsFor = seen; }
      for (const error of page.data) {
        errorRows.append(h('tr', {},
          h('td', { class: 'num' }, error.index),
          h('td', {}, error.item_id ? h('code', {}, error.item_id) : '—'),
          h('td', {}, h('code', {}, error.code)),
          h('td', {}, error.title),
          h('td', {}, error.detail)));
      }
      errorsCursor = page.next_cursor;
      errorsMore.hidden = !errorsCursor;
      errorsEmpty.hidden = errorRows.children.length > 0;
    };
    errorsMore.addEventListener('click', () => loadErrors(errorsCursor).catch((e) => report(e, 'Loading errors failed')));
    cancel.addEventListener('click', async () => {
      if (!window.confirm(`Cancel job #${id}? Inputs already applied stay applied.`)) return;
      cancel.disabled = true;
      try {
        render(await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }));
        announce(`Job #${id} cancelled.`);
      } catch (error) {
        report(error, 'Cancelling failed');
        cancel.disabled = job ? FINAL.has(job.status) : false;
      }
    });
    const refresh = async () => {
      if (job && FINAL.has(job.status)) return; // an ended job changes no more
      const fresh = await api(`/v1/jobs/${encodeURIComponent(id)}`);
      if (isCurrent(view)) render(fresh);
    };
    view.live = new Live({ job: id }, (event) => { if (String(event.data.job.id) === String(id)) render(event.data.job); }, refresh).start();
    refresh().catch((e) => report(e, `Loading job #${id} failed`));
  }

  // A table filled from `path`, whose answers carry their rows in `field`; `paged` lists are read
  // a page at a time (`limit`, `cursor`, `next_cursor`), the others whole.
  function pagedTable(view, { id, caption, columns, path, field, row, emptyText, paged = true }) {
    const rows = h('tbody', {});
    const more = h('button', { type: 'button', hidden: true }, 'Load more');
    const empty = h('p', { class: 'empty', hidden: true }, emptyText);
    const table = h('table', { id },
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      rows);
    let cursor = null;
    const load = async (after) => {
      const page = await api(paged ? `${path}${query({ limit: PAGE_SIZE, cursor: after })}` : path);
      if (!isCurrent(view)) return;
      if (!after) rows.replaceChildren();
      for (const entry of page[field] || []) rows.append(row(entry));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      empty.hidden = rows.children.length > 0;
    };
    more.addEventListener('click', () => load(cursor).catch((e) => report(e, 'Loading failed')));
    return { elements: [table, empty, more], load: () => load(null) };
  }

  function catalogsView() {
    const view = beginView('Catalogs');
    const list = pagedTable(view, {
      id: 'catalogs', caption: 'The catalogs of your project.', columns: ['Name', 'Description', 'Created', 'Updated'],
      path: '/v1/catalogs', field: 'data', emptyText: 'No catalog yet.',
      row: (c) => h('tr', {},
        h('td', {}, h('a', { href: `#/catalogs/${encodeURIComponent(c.name)}` }, c.name)),
        h('td', {}, c.description || '—'), h('td', {}, time(c.created_at)), h('td', {}, time(c.updated_at))),
    });
    main.append(...list.elements);
    list.load().catch((e) => report(e, 'Loading catalogs failed'));
  }

  function catalogView(name) {
    const view = beginView(`Catalog ${name}`);
    const path = `/v1/catalogs/${encodeURIComponent(name)}`;
    const details = h('dl', { class: 'fields', id: 'catalog-fields' });
    const items = pagedTable(view, {
      id: 'items', caption: 'Items, by id.', columns: ['Id', 'Fields', 'Updated'],
      path: `${path}/items`, field: 'data', emptyText: 'No item.',
      row: (item) => h('tr', {},
        h('td', {}, h('code', {}, item.id)),
        h('td', {}, h('pre', {}, JSON.stringify(item.fields))),
        h('td', {}, time(item.updated_at))),
    });
    main.append(details, h('p', {}, h('a', { href: `#/jobs${query({ catalog: name })}` }, `Jobs of ${name}`)),
      h('h2', {}, 'Items'), ...items.elements);
    api(path).then((catalog) => {
      if (!isCurrent(view)) return;
      details.replaceChildren(
        h('dt', {}, 'Items'), h('dd', {}, number(catalog.item_count)),
        h('dt', {}, 'Description'), h('dd', {}, catalog.description || '—'),
        h('dt', {}, 'Created'), h('dd', {}, time(catalog.created_at)),
        h('dt', {}, 'Updated'), h('dd', {}, time(catalog.updated_at)));
    }).catch((e) => report(e, `Loading catalog ${name} failed`));
    items.load().catch((e) => report(e, 'Loading items failed'));
  }

  function noWebhooks(error) {
    if (error instanceof ApiError && error.status === 404 && error.code === 'not_found') {
      main.append(h('p', { class: 'empty' }, 'This server has no webhooks API.'));
      return true;
    }
    return false;
  }

  function showSecret(container, secret) {
    container.replaceChildren(h('div', { class: 'secret', role: 'status' },
      h('p', {}, 'The signing secret, shown this once: keep it where your receiver can read it.'),
      h('code', { id: 'webhook-secret' }, secret)));
  }

  function webhooksView() {
    const view = beginView('Webhooks');
    const secretBox = h('div', {});
    const eventBoxes = EVENT_TYPES.map((type) => h('label', {},
      h('input', { type: 'checkbox', name: 'events', value: type, checked: type === 'job.completed' || type === 'job.failed' }), ` ${type}`));
    const form = h('form', { class: 'filters', id: 'webhook-form', 'aria-label': 'Add a webhook' },
      h('label', { for: 'webhook-url' }, 'URL', h('input', { id: 'webhook-url', name: 'url', type: 'url', required: true, size: 40, placeholder: 'https://…' })),
      h('fieldset', {}, h('legend', {}, 'Events'), eventBoxes),
      h('label', { for: 'webhook-description' }, 'Description', h('input', { id: 'webhook-description', name: 'description', size: 24 })),
      h('button', { type: 'submit' }, 'Add webhook'));
    const list = pagedTable(view, {
      id: 'webhooks', caption: 'Where job events are sent, signed.', columns: ['URL', 'Events', 'Description', 'Created'],
      path: '/v1/webhooks', field: 'webhooks', emptyText: 'No webhook yet.', paged: false,
      row: (w) => h('tr', {},
        h('td', {}, h('a', { href: `#/webhooks/${encodeURIComponent(w.id)}` }, w.url)),
        h('td', {}, (w.events || []).join(', ')), h('td', {}, w.description || '—'), h('td', {}, time(w.created_at))),
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const body = { url: data.get('url').trim(), events: data.getAll('events') };
      if (data.get('description').trim()) body.description = data.get('description').trim();
      try {
        const created = await api('/v1/webhooks', { method: 'POST', body });
        showSecret(secretBox, created.secret);
        form.reset();
        await list.load();
      } catch (error) {
        report(error, 'Adding the webhook failed');
      }
    });
    main.append(h('h2', {}, 'Add a webhook'), form, secretBox, h('h2', {}, 'Registered webhooks'), ...list.elements);
    list.load().catch((error) => {
      if (noWebhooks(error)) form.hidden = true;
      else report(error, 'Loading webhooks failed');
    });
  }

  function webhookView(id) {
    const view = beginView('Webhook');
    const path = `/v1/webhooks/${encodeURIComponent(id)}`;
    const details = h('dl', { class: 'fields', id: 'webhook-fields' });
    const secretBox = h('div', {});
    const rotate = h('button', { type: 'button' }, 'Rotate secret');
    const remove = h('button', { type: 'button', class: 'danger' }, 'Delete webhook');
    const refresh = h('button', { type: 'button' }, 'Refresh deliveries');
    const deliveries = pagedTable(view, {
      id: 'deliveries', caption: 'Newest first.', path: `${path}/deliveries`, field: 'deliveries', emptyText: 'No delivery yet.',
      columns: ['Delivery', 'Event', 'Status', 'Attempts', 'Response', 'Last attempt', 'Next attempt', ''],
      row: (d) => {
        const again = h('button', { type: 'button', 'aria-label': `Send delivery ${d.id} again` }, 'Send again');
        again.addEventListener('click', async () => {
          again.disabled = true;
          try {
            await api(`${path}/deliveries/${encodeURIComponent(d.id)}/redeliver`, { method: 'POST' });
            announce(`Delivery ${d.id} queued again.`);
            await deliveries.load();
          } catch (error) {
            report(error, 'Sending again failed');
            again.disabled = false;
          }
        });
        return h('tr', { dataset: { deliveryId: d.id, status: d.status } },
          h('td', {}, d.id),
          h('td', {}, `${d.event_type} #${d.event_id}`),
          h('td', {}, statusBadge(d.status)),
          h('td', { class: 'num' }, d.attempts),
          h('td', { class: 'num' }, d.response_code === null || d.response_code === undefined ? '—' : d.response_code),
          h('td', {}, time(d.last_attempt_at)),
          h('td', {}, time(d.next_attempt_at)),
          h('td', {}, again));
      },
    });
    rotate.addEventListener('click', async () => {
      if (!window.confirm('Rotate the signing secret? The old one stops working at once.')) return;
      try { showSecret(secretBox, (await api(`${path}/rotate-secret`, { method: 'POST' })).secret); } catch (error) { report(error, 'Rotating failed'); }
    });
    remove.addEventListener('click', async () => {
      if (!window.confirm('Delete this webhook? Its pending deliveries are dropped.')) return;
      try { await api(path, { method: 'DELETE' }); location.hash = '#/webhooks'; } catch (error) { report(error, 'Deleting failed'); }
    });
    refresh.addEventListener('click', () => deliveries.load().catch((e) => report(e, 'Loading deliveries failed')));
    main.append(details, h('div', { class: 'actions' }, rotate, remove), secretBox,
      h('h2', {}, 'Deliveries'), h('div', { class: 'actions' }, refresh), ...deliveries.elements);
    api(path).then((hook) => {
      if (!isCurrent(view)) return;
      view.heading.textContent = `Webhook ${hook.url}`;
      details.replaceChildren(
        h('dt', {}, 'Id'), h('dd', {}, hook.id),
        h('dt', {}, 'URL'), h('dd', {}, hook.url),
        h('dt', {}, 'Events'), h('dd', {}, (hook.events || []).join(', ')),
        h('dt', {}, 'Description'), h('dd', {}, hook.description || '—'),
        h('dt', {}, 'Created'), h('dd', {}, time(hook.created_at)));
    }).catch((error) => { if (!noWebhooks(error)) report(error, 'Loading the webhook failed'); });
    deliveries.load().catch((error) => { if (!(error instanceof ApiError && error.status === 404)) report(error, 'Loading deliveries failed'); });
  }

  // ---------------------------------------------------------------------------------------------
  // Routing and the key.

  function route(focus) {
    const [path, search] = location.hash.replace(/^#/, '').split('?');
    const parts = path.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
    const params = new URLSearchParams(search || '');
    const section = parts[0] || 'jobs';
    for (const link of document.querySelectorAll('nav a')) {
      if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    keyInput.placeholder = apiKey ? 'key set (type to replace)' : 'cat_…';
    if (!apiKey) {
      keyPrompt();
      keyInput.focus();
      return;
    }
    if (!['jobs', 'catalogs', 'webhooks'].includes(section) || (parts.length === 0 && location.hash !== '#/jobs')) {
      location.replace('#/jobs');
      return;
    }
    if (section === 'jobs') (parts[1] ? jobView(parts[1]) : jobsView(params));
    else if (section === 'catalogs') (parts[1] ? catalogView(parts[1]) : catalogsView());
    else (parts[1] ? webhookView(parts[1]) : webhooksView());
    document.title = `${currentView.heading.textContent} · catalogd console`;
    if (focus) currentView.heading.focus();
  }

  keyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const typed = keyInput.value.trim();
    if (!typed) return;
    apiKey = typed;
    sessionStorage.setItem(KEY_STORAGE, apiKey);
    keyInput.value = '';
    route(true);
  });
  document.getElementById('forget-key').addEventListener('click', () => {
    apiKey = '';
    sessionStorage.removeItem(KEY_STORAGE);
    if (currentView && currentView.live) currentView.live.stop();
    route(false);
  });
  window.addEventListener('hashchange', () => route(true));
  route(false);
})();
