// A client for the threads-rs daemon's HTTP API (docs/openapi.json). No runtime
// dependencies: it needs only `fetch` (Node.js 20+, browsers). Every method returns a
// promise and throws a `ThreadsError` carrying the API's stable error code.
//
// The source is src/index.ts; `npm run build` compiles it to dist/ (committed, so that the
// daemon serves the client to its console without Node.js at build time; CI checks that
// dist/ is the compile of the source).
/** An error answered by the daemon: its HTTP status, stable code, message and details. */
export class ThreadsError extends Error {
    status;
    code;
    details;
    constructor(status, code, message, details) {
        super(`${code}: ${message} (HTTP ${status})`);
        this.name = "ThreadsError";
        this.status = status;
        this.code = code;
        this.details = details;
    }
}
const seg = (s) => encodeURIComponent(s);
/** A connection to one daemon: its base URL (`http://127.0.0.1:PORT`) and bearer token. */
export class Client {
    baseUrl;
    token;
    fetch;
    constructor(baseUrl, token, { fetch: fetchImpl = globalThis.fetch } = {}) {
        this.baseUrl = baseUrl.replace(/\/$/, "");
        this.token = token;
        // Called unbound: a browser's `fetch` refuses to run with another `this`.
        this.fetch = (...args) => fetchImpl(...args);
    }
    /** Sends one request and returns the answer's JSON; throws `ThreadsError` if refused. */
    async request(method, path, body) {
        const headers = { authorization: `Bearer ${this.token}` };
        if (body !== undefined)
            headers["content-type"] = "application/json";
        const response = await this.fetch(this.baseUrl + path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        const json = text ? JSON.parse(text) : null;
        if (!response.ok) {
            const error = (json && json.error) || {};
            throw new ThreadsError(response.status, error.code || "error", error.message || text, error.details);
        }
        return json;
    }
    /** This peer's id and addresses. */
    identity() {
        return this.request("GET", "/v1/identity");
    }
    /** Every thread of this peer. */
    async threads() {
        return (await this.request("GET", "/v1/threads")).threads;
    }
    /** Creates a thread; `accessControlled` for roles and revocation. Returns its id. */
    async createThread({ accessControlled = false } = {}) {
        return (await this.request("POST", "/v1/threads", { access_controlled: accessControlled })).thread;
    }
    /** A thread's variant, logs, members, peers and addresses. */
    thread(thread) {
        return this.request("GET", `/v1/threads/${seg(thread)}`);
    }
    /** An invite for `member` with `role`, valid for `expiresInS` seconds if given. */
    async invite(thread, member, role = "write", { expiresInS } = {}) {
        const body = { member, role };
        if (expiresInS !== undefined)
            body.expires_in_s = expiresInS;
        return (await this.request("POST", `/v1/threads/${seg(thread)}/invites`, body)).invite;
    }
    /**
     * A link invite: whoever holds the text joins with the keys of `role` (in an
     * access-controlled thread, what they may do is the thread's default role).
     */
    async inviteLink(thread, role = "read", { expiresInS } = {}) {
        const body = { link: true, role };
        if (expiresInS !== undefined)
            body.expires_in_s = expiresInS;
        return (await this.request("POST", `/v1/threads/${seg(thread)}/invites`, body)).invite;
    }
    /** Joins a thread from an invite. Returns the thread id. */
    async join(invite) {
        return (await this.request("POST", "/v1/join", { invite })).thread;
    }
    /**
     * Gives `member` `role` in an access-controlled thread (`no-access` revokes it; taking
     * the read role or every role away starts a new key epoch).
     */
    setRole(thread, member, role) {
        return this.request("PUT", `/v1/threads/${seg(thread)}/members/${seg(member)}`, { role });
    }
    /** Sets the role of members without one of their own (what a link invite grants). */
    setDefaultRole(thread, role) {
        return this.request("PUT", `/v1/threads/${seg(thread)}/default-role`, { role });
    }
    /**
     * Compacts a thread: the events no view needs any more are named in an operation every
     * peer applies (they apply nothing, and their bodies are dropped); the views stay as they
     * are. The owner of an access-controlled thread may, and a member of a raw one.
     */
    compact(thread) {
        return this.request("POST", `/v1/threads/${seg(thread)}/compact`);
    }
    /** Leaves a thread: stops syncing it and deletes everything of it on this peer. */
    async leave(thread) {
        await this.request("DELETE", `/v1/threads/${seg(thread)}`);
    }
    /** Every collection of a thread. */
    async collections(thread) {
        return (await this.request("GET", `/v1/threads/${seg(thread)}/collections`)).collections;
    }
    /** Creates a collection with a JSON Schema. */
    newCollection(thread, name, schema) {
        return this.request("POST", `/v1/threads/${seg(thread)}/collections`, { name, schema });
    }
    /** Deletes a collection with its documents and indexes (the delete role). */
    dropCollection(thread, name) {
        return this.request("DELETE", `/v1/threads/${seg(thread)}/collections/${seg(name)}`);
    }
    /** Creates a document with an id made by the daemon. Returns `{id, counter}`. */
    create(thread, collection, doc) {
        return this.request("POST", `/v1/threads/${seg(thread)}/docs/${seg(collection)}`, doc);
    }
    /** Creates or replaces the document `id`. */
    save(thread, collection, id, doc) {
        return this.request("PUT", `/v1/threads/${seg(thread)}/docs/${seg(collection)}/${seg(id)}`, doc);
    }
    /** The document `id`, or `null`. */
    async get(thread, collection, id) {
        try {
            return (await this.request("GET", `/v1/threads/${seg(thread)}/docs/${seg(collection)}/${seg(id)}`)).doc;
        }
        catch (e) {
            if (e instanceof ThreadsError && e.status === 404)
                return null;
            throw e;
        }
    }
    /** Deletes the document `id`. */
    delete(thread, collection, id) {
        return this.request("DELETE", `/v1/threads/${seg(thread)}/docs/${seg(collection)}/${seg(id)}`);
    }
    /** Runs a query (build one with `where`); returns `{docs: [{id, doc}], next}`. */
    find(thread, collection, query = {}) {
        return this.request("POST", `/v1/threads/${seg(thread)}/query/${seg(collection)}`, query);
    }
    /** How a query would read the collection. */
    async explain(thread, collection, query = {}) {
        return (await this.request("POST", `/v1/threads/${seg(thread)}/explain/${seg(collection)}`, query)).plan;
    }
    /** A transaction: collect operations, then `commit()` them as one event (all or none). */
    transaction(thread) {
        return new Transaction(this, thread);
    }
    /**
     * Follows the thread's change feed: calls `onEvent` with each applied event (its
     * operations and whether they were refused). Reconnects after a dropped connection and
     * resumes after the last event seen (`Last-Event-ID`), losing and repeating nothing.
     * Returns a function that stops listening.
     */
    listen(thread, onEvent, { cursor, retryMs = 500 } = {}) {
        let last = cursor;
        let stopped = false;
        const controller = { current: null };
        const run = async () => {
            while (!stopped) {
                const abort = new AbortController();
                controller.current = abort;
                try {
                    const headers = {
                        authorization: `Bearer ${this.token}`,
                        accept: "text/event-stream",
                    };
                    if (last)
                        headers["last-event-id"] = last;
                    const response = await this.fetch(`${this.baseUrl}/v1/threads/${seg(thread)}/changes`, {
                        headers,
                        signal: abort.signal,
                    });
                    if (!response.ok)
                        throw new ThreadsError(response.status, "stream", await response.text());
                    if (!response.body)
                        throw new ThreadsError(response.status, "stream", "no body");
                    const decoder = new TextDecoder();
                    let pending = "";
                    const reader = response.body.getReader();
                    for (;;) {
                        const { value, done } = await reader.read();
                        if (done)
                            break;
                        pending += decoder.decode(value, { stream: true });
                        let end;
                        while ((end = pending.indexOf("\n\n")) >= 0) {
                            const block = pending.slice(0, end);
                            pending = pending.slice(end + 2);
                            let id;
                            let data;
                            for (const line of block.split("\n")) {
                                if (line.startsWith("id: "))
                                    id = line.slice(4);
                                else if (line.startsWith("data: "))
                                    data = line.slice(6);
                            }
                            if (data === undefined)
                                continue;
                            if (id)
                                last = id;
                            if (!stopped)
                                await onEvent(JSON.parse(data));
                        }
                    }
                }
                catch (e) {
                    if (stopped)
                        return;
                    if (e instanceof ThreadsError && e.status < 500)
                        throw e;
                }
                if (!stopped)
                    await new Promise((r) => setTimeout(r, retryMs));
            }
        };
        const done = run();
        const stop = (() => {
            stopped = true;
            if (controller.current)
                controller.current.abort();
            return done.catch(() => { });
        });
        stop.done = done;
        return stop;
    }
}
/** Operations collected to be written as one event. */
export class Transaction {
    client;
    thread;
    ops = [];
    constructor(client, thread) {
        this.client = client;
        this.thread = thread;
    }
    put(key, value) {
        this.ops.push({ op: "put", key, value });
        return this;
    }
    del(key) {
        this.ops.push({ op: "del", key });
        return this;
    }
    create(collection, id, doc) {
        this.ops.push({ op: "create", collection, id, doc });
        return this;
    }
    save(collection, id, doc) {
        this.ops.push({ op: "save", collection, id, doc });
        return this;
    }
    delete(collection, id) {
        this.ops.push({ op: "delete", collection, id });
        return this;
    }
    createCollection(name, schema) {
        this.ops.push({ op: "create_collection", name, schema });
        return this;
    }
    addIndex(collection, name, path, unique = false) {
        this.ops.push({ op: "add_index", collection, name, path, unique });
        return this;
    }
    dropCollection(name) {
        this.ops.push({ op: "drop_collection", name });
        return this;
    }
    /** Writes every operation as one event; throws `ThreadsError` (code `rejected`, with
     *  `details.refused`) if any would be refused, and then nothing is written. */
    commit() {
        return this.client.request("POST", `/v1/threads/${seg(this.thread)}/transactions`, { ops: this.ops });
    }
}
/** A filter, combined with `and`/`or` and turned into a query with `query()`. */
export class Filter {
    filter;
    constructor(filter) {
        this.filter = filter;
    }
    and(...others) {
        return new Filter({ and: [this.filter, ...others.map((o) => o.filter)] });
    }
    or(...others) {
        return new Filter({ or: [this.filter, ...others.map((o) => o.filter)] });
    }
    /** The query: optional `sort` ([{path, desc}]), `limit` and `after` (a page's `next`). */
    query({ sort, limit, after } = {}) {
        const q = { filter: this.filter };
        if (sort)
            q.sort = sort;
        if (limit !== undefined)
            q.limit = limit;
        if (after !== undefined)
            q.after = after;
        return q;
    }
}
/** A query builder: `where("age").ge(18).and(where("name").prefix("A"))`, then `.query()`. */
export function where(path) {
    const make = (filter) => new Filter(filter);
    return {
        eq: (v) => make({ eq: [path, v] }),
        ne: (v) => make({ ne: [path, v] }),
        gt: (v) => make({ gt: [path, v] }),
        ge: (v) => make({ ge: [path, v] }),
        lt: (v) => make({ lt: [path, v] }),
        le: (v) => make({ le: [path, v] }),
        in: (vs) => make({ in: [path, vs] }),
        exists: (b = true) => make({ exists: [path, b] }),
        prefix: (s) => make({ prefix: [path, s] }),
    };
}
