// Klaviyo's official Node SDK (`klaviyo-api` on npm) against a running catalogd.
//
// Run by crates/api/tests/klaviyo_node_sdk.rs with CATALOGD_URL (e.g. http://127.0.0.1:8080),
// CATALOGD_TOKEN (a key of a fresh project with catalogs:read and catalogs:write) and NODE_PATH
// holding the SDK. For every job type catalogd serves: create, list with a status filter following
// the cursor, and get with `include` where Klaviyo has one; through an API-key session and through
// an OAuth session (`Authorization: Bearer`). Exits non-zero on the first thing that does not work.

"use strict";

const assert = require("node:assert/strict");
const { ApiKeySession, OAuthBasicSession, CatalogsApi } = require("klaviyo-api");

const URL = process.env.CATALOGD_URL.replace(/\/$/, "");
const TOKEN = process.env.CATALOGD_TOKEN;

const compound = (id) => "$custom:::$default:::" + id;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function catalogsApi(session) {
  const api = new CatalogsApi(session);
  api.basePath = URL;
  return api;
}

function query(type, member, data) {
  return { data: { type, attributes: { [member]: { data } } } };
}

function newItem(id, title) {
  return {
    type: "catalog-item",
    attributes: {
      externalId: id,
      title,
      description: title + ", described",
      url: "https://shop.example/" + id,
      price: 42.5,
      published: true,
    },
  };
}

/** Reads a job until the runner has completed it. */
async function untilComplete(read) {
  let job;
  for (let i = 0; i < 400; i += 1) {
    job = (await read()).body;
    if (job.data.attributes.status === "complete") return job;
    await sleep(50);
  }
  throw new Error("the job did not complete: " + JSON.stringify(job));
}

/** Pages through a job type's complete jobs with a filter and the cursor; the job must be there. */
async function listed(list, jobId) {
  const seen = [];
  let pageCursor;
  for (;;) {
    const options = { filter: 'equals(status,"complete")' };
    if (pageCursor !== undefined) options.pageCursor = pageCursor;
    const page = (await list(options)).body;
    for (const job of page.data) {
      assert.equal(job.attributes.status, "complete");
      seen.push(job.id);
    }
    pageCursor = page.links.next || undefined;
    if (pageCursor === undefined) break;
  }
  assert.ok(seen.includes(jobId), `job ${jobId} listed among ${seen}`);
  return seen.length;
}

async function family(api, tag, pagedJobs) {
  const skus = [0, 1, 2].map((i) => `${tag}-SKU-${i}`);

  // Item create jobs.
  let created = (await api.bulkCreateCatalogItems(
    query("catalog-item-bulk-create-job", "items", skus.map((s) => newItem(s, "Shirt " + s))),
  )).body;
  assert.equal(created.data.type, "catalog-item-bulk-create-job");
  let done = await untilComplete(() => api.getBulkCreateCatalogItemsJob(created.data.id, { include: ["items"] }));
  assert.deepEqual(done.included.map((i) => i.id).sort(), skus.map(compound).sort());
  assert.equal(done.included[0].attributes.price, 42.5);
  await listed((o) => api.getBulkCreateCatalogItemsJobs(o), created.data.id);

  // Item update jobs.
  created = (await api.bulkUpdateCatalogItems(query("catalog-item-bulk-update-job", "items", [
    { type: "catalog-item", id: compound(skus[0]), attributes: { title: "Blue shirt" } },
  ]))).body;
  done = await untilComplete(() => api.getBulkUpdateCatalogItemsJob(created.data.id, { include: ["items"] }));
  assert.deepEqual(done.included.map((i) => [i.attributes.title, i.attributes.url]), [["Blue shirt", "https://shop.example/" + skus[0]]]);
  await listed((o) => api.getBulkUpdateCatalogItemsJobs(o), created.data.id);

  // Category create jobs.
  const category = tag + "-CAT";
  created = (await api.bulkCreateCatalogCategories(query("catalog-category-bulk-create-job", "categories", [{
    type: "catalog-category",
    attributes: { externalId: category, name: "Shirts" },
    relationships: { items: { data: skus.slice(0, 2).map((s) => ({ type: "catalog-item", id: compound(s) })) } },
  }]))).body;
  assert.equal(created.data.type, "catalog-category-bulk-create-job");
  done = await untilComplete(() => api.getBulkCreateCategoriesJob(created.data.id, { include: ["categories"] }));
  assert.deepEqual(done.included.map((c) => [c.id, c.attributes.name]), [[compound(category), "Shirts"]]);
  await listed((o) => api.getBulkCreateCategoriesJobs(o), created.data.id);

  // Category update jobs.
  created = (await api.bulkUpdateCatalogCategories(query("catalog-category-bulk-update-job", "categories", [
    { type: "catalog-category", id: compound(category), attributes: { name: "Blue shirts" } },
  ]))).body;
  done = await untilComplete(() => api.getBulkUpdateCategoriesJob(created.data.id, { include: ["categories"] }));
  assert.deepEqual(done.included.map((c) => c.attributes.name), ["Blue shirts"]);
  await listed((o) => api.getBulkUpdateCategoriesJobs(o), created.data.id);

  // Category delete jobs (no include in Klaviyo's reference).
  created = (await api.bulkDeleteCatalogCategories(query("catalog-category-bulk-delete-job", "categories", [
    { type: "catalog-category", id: compound(category) },
  ]))).body;
  assert.equal(created.data.type, "catalog-category-bulk-delete-job");
  await untilComplete(() => api.getBulkDeleteCategoriesJob(created.data.id));
  await listed((o) => api.getBulkDeleteCategoriesJobs(o), created.data.id);

  // Item delete jobs, more than a page of them the first time: the cursor is followed.
  const deletes = [];
  for (let i = 0; i < pagedJobs; i += 1) {
    const job = (await api.bulkDeleteCatalogItems(query("catalog-item-bulk-delete-job", "items", [
      { type: "catalog-item", id: compound(`${tag}-GONE-${i}`) },
    ]))).body;
    deletes.push(job.data.id);
  }
  created = (await api.bulkDeleteCatalogItems(query("catalog-item-bulk-delete-job", "items", skus.map((s) => ({ type: "catalog-item", id: compound(s) }))))).body;
  await untilComplete(() => api.getBulkDeleteCatalogItemsJob(created.data.id));
  for (const id of deletes) await untilComplete(() => api.getBulkDeleteCatalogItemsJob(id));
  const count = await listed((o) => api.getBulkDeleteCatalogItemsJobs(o), created.data.id);
  assert.ok(count > pagedJobs, `${count} item delete jobs listed`);

  // The catalog reads the included resources link to.
  const item = (await api.getCatalogItems()).body;
  assert.ok(Array.isArray(item.data));
  console.log("every job type through", tag);
}

async function main() {
  // The first call of this fresh project: catalogd creates the catalog `$default` maps to.
  await family(catalogsApi(new ApiKeySession(TOKEN)), "KEY", 110);
  await family(catalogsApi(new OAuthBasicSession(TOKEN)), "OAUTH", 0);
  try {
    await catalogsApi(new ApiKeySession(TOKEN)).getBulkDeleteCatalogItemsJob("999999999");
    throw new Error("a missing job must be an error");
  } catch (error) {
    assert.equal(error.response && error.response.status, 404, String(error));
    assert.equal(error.response.data.errors[0].code, "not_found");
  }
  console.log("klaviyo-api Node SDK: all checks passed");
}

main().catch((error) => {
  console.error(error && error.response ? JSON.stringify(error.response.data) : error);
  console.error(error);
  process.exit(1);
});
