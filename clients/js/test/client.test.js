// The client against a real daemon: `THREADS_BIN` (default target/debug/threads) is
// started on a temporary data directory and stopped at the end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Client, ThreadsError, where } from "../dist/index.js";

const bin = process.env.THREADS_BIN || resolve(import.meta.dirname, "../../../target/debug/threads");

async function startDaemon(data = mkdtempSync(join(tmpdir(), "threads-js-")), http = "127.0.0.1:0") {
  rmSync(join(data, "api"), { force: true });
  const child = spawn(bin, ["--data", data, "daemon", "--http", http], { stdio: "ignore" });
  const started = Date.now();
  while (!existsSync(join(data, "api")) || readFileSync(join(data, "api"), "utf8") === "") {
    if (Date.now() - started > 60_000) throw new Error("the daemon did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const base = readFileSync(join(data, "api"), "utf8").trim();
  const token = readFileSync(join(data, "token"), "utf8").trim();
  return { child, data, client: new Client(base, token) };
}

/** A free TCP port on 127.0.0.1. */
async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

const stopped = (child) => new Promise((r) => { child.once("exit", r); child.kill("SIGTERM"); });

test("threads, collections, documents, queries, transactions and a feed that resumes", async () => {
  const { child, client } = await startDaemon();
  try {
    const thread = await client.createThread();
    assert.deepEqual(await client.threads(), [thread]);
    await client.newCollection(thread, "people", {
      type: "object",
      required: ["name"],
      properties: { name: { type: "string" }, age: { type: "integer" } },
    });
    await client.transaction(thread).addIndex("people", "by_age", "age").commit();
    const { id } = await client.create(thread, "people", { name: "Ann", age: 41 });
    await client.save(thread, "people", "bob", { name: "Bob", age: 17 });
    assert.deepEqual(await client.get(thread, "people", id), { name: "Ann", age: 41 });
    assert.equal(await client.get(thread, "people", "nobody"), null);

    const adults = where("age").ge(18).query({ sort: [{ path: "age" }] });
    const page = await client.find(thread, "people", adults);
    assert.deepEqual(page.docs.map((d) => d.doc.name), ["Ann"]);
    assert.match(await client.explain(thread, "people", adults), /by_age/);

    // A schema violation: a typed error with the API's code.
    await assert.rejects(client.save(thread, "people", "x", { age: 3 }), (e) =>
      e instanceof ThreadsError && e.status === 422 && e.code === "schema_violation");
    // A transaction is all or none: the second create conflicts with the first.
    await assert.rejects(
      client.transaction(thread)
        .create("people", "cy", { name: "Cy" })
        .create("people", "cy", { name: "Cy again" })
        .put("k", "v")
        .commit(),
      (e) => e instanceof ThreadsError && e.code === "rejected" && e.details.refused[0].index === 1,
    );
    assert.equal(await client.get(thread, "people", "cy"), null);

    // The change feed: events in order; a listener started from a cursor resumes after it.
    const seen = [];
    let stop = client.listen(thread, (e) => { seen.push(e); });
    while (seen.length < 4) await new Promise((r) => setTimeout(r, 20));
    await stop();
    assert.deepEqual(seen.map((e) => e.counter), [1, 2, 3, 4]);
    const resumed = [];
    stop = client.listen(thread, (e) => { resumed.push(e); }, { cursor: seen[1].cursor });
    await client.transaction(thread).put("after", "resume").commit();
    while (resumed.length < 3) await new Promise((r) => setTimeout(r, 20));
    await stop();
    assert.deepEqual(resumed.map((e) => e.counter), [3, 4, 5]);
    assert.equal(resumed[2].changes[0].kind, "kv");
    // A collection deleted, and one deleted inside a transaction.
    await client.newCollection(thread, "scratch", { type: "object" });
    await client.save(thread, "scratch", "s", { x: 1 });
    await client.dropCollection(thread, "scratch");
    assert.equal(await client.get(thread, "scratch", "s"), null);
    await client.transaction(thread).createCollection("temp", { type: "object" }).commit();
    await client.transaction(thread).dropCollection("temp").commit();
    assert.ok(!(await client.collections(thread)).some((c) => c.name === "temp" || c.name === "scratch"));
    // Compaction (the owner of an access-controlled thread): the save of age 18 is
    // superseded by the next; the documents stay.
    const owned = await client.createThread({ accessControlled: true });
    await client.newCollection(owned, "people", { type: "object" });
    await client.save(owned, "people", "bob", { name: "Bob", age: 17 });
    await client.save(owned, "people", "bob", { name: "Bob", age: 18 });
    await client.save(owned, "people", "bob", { name: "Bob", age: 19 });
    const compacted = await client.compact(owned);
    assert.equal(compacted.events, 1, JSON.stringify(compacted));
    assert.ok(compacted.freed_bytes > 0, JSON.stringify(compacted));
    assert.deepEqual(await client.get(owned, "people", "bob"), { name: "Bob", age: 19 });
    assert.deepEqual((await client.compact(owned)).events, 0);
  } finally {
    child.kill("SIGTERM");
  }
});

test("a listener resumes after the daemon restarts, losing and repeating nothing", async () => {
  const http = `127.0.0.1:${await freePort()}`;
  let { child, data, client } = await startDaemon(undefined, http);
  const thread = await client.createThread();
  const seen = [];
  const stop = client.listen(thread, (e) => { seen.push(e.counter); }, { retryMs: 100 });
  try {
    await client.transaction(thread).put("a", "1").commit();
    await client.transaction(thread).put("b", "2").commit();
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 20));
    await stopped(child);
    ({ child } = await startDaemon(data, http));
    await client.transaction(thread).put("c", "3").commit();
    const started = Date.now();
    while (seen.length < 3) {
      assert.ok(Date.now() - started < 30_000, "the listener did not resume");
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(seen, [1, 2, 3]);
  } finally {
    await stop();
    child.kill("SIGTERM");
  }
});

test("link invites, roles and leaving a thread", async () => {
  const a = await startDaemon();
  const b = await startDaemon();
  try {
    const raw = await a.client.createThread();
    const link = await a.client.inviteLink(raw, "write");
    assert.equal(await b.client.join(link), raw);
    await b.client.leave(raw);
    assert.deepEqual(await b.client.threads(), []);
    await assert.rejects(b.client.leave(raw), (e) => e instanceof ThreadsError && e.status === 404);

    const acl = await a.client.createThread({ accessControlled: true });
    const bId = (await b.client.identity()).id;
    const changed = await a.client.setRole(acl, bId, "read");
    assert.deepEqual(changed, { member: bId, role: "read" });
    await assert.rejects(a.client.setRole(acl, bId, "owner"), (e) => e instanceof ThreadsError && e.status === 400);
    assert.deepEqual(await a.client.setDefaultRole(acl, "follow"), { role: "follow" });
  } finally {
    await stopped(a.child);
    await stopped(b.child);
  }
});

test("the README's example runs as written", async () => {
  const { child, client } = await startDaemon();
  try {
    const readme = readFileSync(resolve(import.meta.dirname, "../README.md"), "utf8");
    const block = readme.match(/```js\n([\s\S]*?)```/);
    assert.ok(block, "the README has an example");
    // As a user runs it: the package's module, the daemon's address and token.
    const source = block[1]
      .replace('"@threads-rs/client"', JSON.stringify(pathToFileURL(resolve(import.meta.dirname, "../dist/index.js")).href))
      .replace('"http://127.0.0.1:7070"', JSON.stringify(client.baseUrl));
    const dir = mkdtempSync(join(tmpdir(), "threads-js-readme-"));
    const file = join(dir, "example.mjs");
    writeFileSync(file, `const token = ${JSON.stringify(client.token)};\n${source}\nexport { stop, thread, adults };\n`);
    const example = await import(pathToFileURL(file).href);
    try {
      assert.deepEqual(example.adults.docs.map((d) => d.doc.name), ["Ann"]);
      assert.deepEqual(await client.get(example.thread, "people", example.adults.docs[0].id), { name: "Ann", age: 42 });
      assert.equal((await client.threads()).length, 1);
    } finally {
      await example.stop();
    }
  } finally {
    await stopped(child);
  }
});
