// Types of the threads-rs daemon client (src/index.js).

export class ThreadsError extends Error {
  status: number;
  code: string;
  details?: { refused?: { index: number; view: string; reason: string; forbidden: boolean }[] };
}

export interface Query {
  filter?: object;
  sort?: { path: string; desc?: boolean }[];
  limit?: number;
  after?: string;
}

export interface Page { docs: { id: string; doc: unknown }[]; next: string | null }

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

export class Client {
  constructor(baseUrl: string, token: string, options?: { fetch?: typeof fetch });
  identity(): Promise<{ id: string; addrs: string[] }>;
  threads(): Promise<string[]>;
  createThread(options?: { accessControlled?: boolean }): Promise<string>;
  thread(thread: string): Promise<object>;
  invite(thread: string, member: string, role?: string, options?: { expiresInS?: number }): Promise<string>;
  inviteLink(thread: string, role?: string, options?: { expiresInS?: number }): Promise<string>;
  join(invite: string): Promise<string>;
  setRole(thread: string, member: string, role: string): Promise<{ member: string; role: string }>;
  setDefaultRole(thread: string, role: string): Promise<{ role: string }>;
  leave(thread: string): Promise<void>;
  collections(thread: string): Promise<object[]>;
  newCollection(thread: string, name: string, schema: object): Promise<{ counter: number }>;
  create(thread: string, collection: string, doc: object): Promise<{ id: string; counter: number }>;
  save(thread: string, collection: string, id: string, doc: object): Promise<{ counter: number }>;
  get(thread: string, collection: string, id: string): Promise<unknown | null>;
  delete(thread: string, collection: string, id: string): Promise<{ counter: number }>;
  find(thread: string, collection: string, query?: Query): Promise<Page>;
  explain(thread: string, collection: string, query?: Query): Promise<string>;
  transaction(thread: string): Transaction;
  listen(
    thread: string,
    onEvent: (event: ChangeEvent) => void | Promise<void>,
    options?: { cursor?: string; retryMs?: number },
  ): (() => Promise<void>) & { done: Promise<void> };
}

export class Transaction {
  put(key: string, value: string): this;
  del(key: string): this;
  create(collection: string, id: string, doc: object): this;
  save(collection: string, id: string, doc: object): this;
  delete(collection: string, id: string): this;
  createCollection(name: string, schema: object): this;
  addIndex(collection: string, name: string, path: string, unique?: boolean): this;
  commit(): Promise<{ counter: number }>;
}

export class Filter {
  and(...others: Filter[]): Filter;
  or(...others: Filter[]): Filter;
  query(options?: { sort?: { path: string; desc?: boolean }[]; limit?: number; after?: string }): Query;
}

export function where(path: string): {
  eq(v: unknown): Filter; ne(v: unknown): Filter; gt(v: unknown): Filter; ge(v: unknown): Filter;
  lt(v: unknown): Filter; le(v: unknown): Filter; in(vs: unknown[]): Filter;
  exists(b?: boolean): Filter; prefix(s: string): Filter;
};
