/** One operation a write refused: where it is in the write, in which view, and why. */
export interface Refused {
    index: number;
    view: string;
    reason: string;
    forbidden: boolean;
}
/** An error answered by the daemon: its HTTP status, stable code, message and details. */
export declare class ThreadsError extends Error {
    readonly status: number;
    readonly code: string;
    readonly details?: {
        refused?: Refused[];
        [field: string]: unknown;
    };
    constructor(status: number, code: string, message: string, details?: {
        refused?: Refused[];
        [field: string]: unknown;
    });
}
/** A role in an access-controlled thread. */
export type Role = "no-access" | "follow" | "read" | "write" | "delete";
/** A document query: a filter (built with `where`), a sort, a page size and a cursor. */
export interface Query {
    filter?: object;
    sort?: {
        path: string;
        desc?: boolean;
    }[];
    limit?: number;
    after?: string;
}
/** A page of query results; `next` is the cursor of the next page, if any. */
export interface Page {
    docs: {
        id: string;
        doc: unknown;
    }[];
    next: string | null;
}
/** One applied event of a thread's change feed. */
export interface ChangeEvent {
    author: string;
    counter: number;
    time: number;
    cursor: string;
    rejected: string | null;
    changes: {
        index: number;
        view: string;
        kind: "kv" | "doc" | "automerge" | "other";
        rejected: string | null;
        [field: string]: unknown;
    }[];
}
/** What `listen` returns: call it to stop; `done` settles when the listener ends. */
export type Stop = (() => Promise<void>) & {
    done: Promise<void>;
};
type Fetch = typeof globalThis.fetch;
/** A connection to one daemon: its base URL (`http://127.0.0.1:PORT`) and bearer token. */
export declare class Client {
    readonly baseUrl: string;
    readonly token: string;
    readonly fetch: Fetch;
    constructor(baseUrl: string, token: string, { fetch: fetchImpl }?: {
        fetch?: Fetch;
    });
    /** Sends one request and returns the answer's JSON; throws `ThreadsError` if refused. */
    request<T = any>(method: string, path: string, body?: unknown): Promise<T>;
    /** This peer's id and addresses. */
    identity(): Promise<{
        id: string;
        addrs: string[];
    }>;
    /** Every thread of this peer. */
    threads(): Promise<string[]>;
    /** Creates a thread; `accessControlled` for roles and revocation. Returns its id. */
    createThread({ accessControlled }?: {
        accessControlled?: boolean;
    }): Promise<string>;
    /** A thread's variant, logs, members, peers and addresses. */
    thread(thread: string): Promise<Record<string, unknown>>;
    /** An invite for `member` with `role`, valid for `expiresInS` seconds if given. */
    invite(thread: string, member: string, role?: Role, { expiresInS }?: {
        expiresInS?: number;
    }): Promise<string>;
    /**
     * A link invite: whoever holds the text joins with the keys of `role` (in an
     * access-controlled thread, what they may do is the thread's default role).
     */
    inviteLink(thread: string, role?: Role, { expiresInS }?: {
        expiresInS?: number;
    }): Promise<string>;
    /** Joins a thread from an invite. Returns the thread id. */
    join(invite: string): Promise<string>;
    /**
     * Gives `member` `role` in an access-controlled thread (`no-access` revokes it; taking
     * the read role or every role away starts a new key epoch).
     */
    setRole(thread: string, member: string, role: Role): Promise<{
        member: string;
        role: Role;
    }>;
    /** Sets the role of members without one of their own (what a link invite grants). */
    setDefaultRole(thread: string, role: Role): Promise<{
        role: Role;
    }>;
    /**
     * Compacts a thread: the events no view needs any more are named in an operation every
     * peer applies (they apply nothing, and their bodies are dropped); the views stay as they
     * are. The owner of an access-controlled thread may, and a member of a raw one.
     */
    compact(thread: string): Promise<{
        events: number;
        freed_bytes: number;
    }>;
    /** Leaves a thread: stops syncing it and deletes everything of it on this peer. */
    leave(thread: string): Promise<void>;
    /** Every collection of a thread. */
    collections(thread: string): Promise<Record<string, unknown>[]>;
    /** Creates a collection with a JSON Schema. */
    newCollection(thread: string, name: string, schema: object): Promise<{
        counter: number;
    }>;
    /** Deletes a collection with its documents and indexes (the delete role). */
    dropCollection(thread: string, name: string): Promise<{
        counter: number;
    }>;
    /** Creates a document with an id made by the daemon. Returns `{id, counter}`. */
    create(thread: string, collection: string, doc: object): Promise<{
        id: string;
        counter: number;
    }>;
    /** Creates or replaces the document `id`. */
    save(thread: string, collection: string, id: string, doc: object): Promise<{
        counter: number;
    }>;
    /** The document `id`, or `null`. */
    get(thread: string, collection: string, id: string): Promise<unknown | null>;
    /** Deletes the document `id`. */
    delete(thread: string, collection: string, id: string): Promise<{
        counter: number;
    }>;
    /** Runs a query (build one with `where`); returns `{docs: [{id, doc}], next}`. */
    find(thread: string, collection: string, query?: Query): Promise<Page>;
    /** How a query would read the collection. */
    explain(thread: string, collection: string, query?: Query): Promise<string>;
    /** A transaction: collect operations, then `commit()` them as one event (all or none). */
    transaction(thread: string): Transaction;
    /**
     * Follows the thread's change feed: calls `onEvent` with each applied event (its
     * operations and whether they were refused). Reconnects after a dropped connection and
     * resumes after the last event seen (`Last-Event-ID`), losing and repeating nothing.
     * Returns a function that stops listening.
     */
    listen(thread: string, onEvent: (event: ChangeEvent) => void | Promise<void>, { cursor, retryMs }?: {
        cursor?: string;
        retryMs?: number;
    }): Stop;
}
/** One operation of a transaction, as the API takes it. */
export type Operation = {
    op: "put";
    key: string;
    value: string;
} | {
    op: "del";
    key: string;
} | {
    op: "create";
    collection: string;
    id: string;
    doc: object;
} | {
    op: "save";
    collection: string;
    id: string;
    doc: object;
} | {
    op: "delete";
    collection: string;
    id: string;
} | {
    op: "create_collection";
    name: string;
    schema: object;
} | {
    op: "add_index";
    collection: string;
    name: string;
    path: string;
    unique: boolean;
} | {
    op: "drop_collection";
    name: string;
};
/** Operations collected to be written as one event. */
export declare class Transaction {
    readonly client: Client;
    readonly thread: string;
    readonly ops: Operation[];
    constructor(client: Client, thread: string);
    put(key: string, value: string): this;
    del(key: string): this;
    create(collection: string, id: string, doc: object): this;
    save(collection: string, id: string, doc: object): this;
    delete(collection: string, id: string): this;
    createCollection(name: string, schema: object): this;
    addIndex(collection: string, name: string, path: string, unique?: boolean): this;
    dropCollection(name: string): this;
    /** Writes every operation as one event; throws `ThreadsError` (code `rejected`, with
     *  `details.refused`) if any would be refused, and then nothing is written. */
    commit(): Promise<{
        counter: number;
    }>;
}
/** A filter, combined with `and`/`or` and turned into a query with `query()`. */
export declare class Filter {
    readonly filter: object;
    constructor(filter: object);
    and(...others: Filter[]): Filter;
    or(...others: Filter[]): Filter;
    /** The query: optional `sort` ([{path, desc}]), `limit` and `after` (a page's `next`). */
    query({ sort, limit, after }?: {
        sort?: Query["sort"];
        limit?: number;
        after?: string;
    }): Query;
}
/** The comparisons of one document path, each making a `Filter`. */
export interface Where {
    eq(v: unknown): Filter;
    ne(v: unknown): Filter;
    gt(v: unknown): Filter;
    ge(v: unknown): Filter;
    lt(v: unknown): Filter;
    le(v: unknown): Filter;
    in(vs: unknown[]): Filter;
    exists(b?: boolean): Filter;
    prefix(s: string): Filter;
}
/** A query builder: `where("age").ge(18).and(where("name").prefix("A"))`, then `.query()`. */
export declare function where(path: string): Where;
export {};
