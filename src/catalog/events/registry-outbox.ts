import { createHash } from 'node:crypto';
import type { Logger } from '../../shared/logger.js';
import type { ContainerRegistry } from '../model.js';
import type { ReplaceResult } from '../store/collection.js';
import { DuplicateIdError } from '../store/collection.js';
import type { EventStore, StoredIntent } from '../store/event-store.js';
import type { RegistryStore } from '../store/registry-store.js';
import { toPublic } from '../domain/credentials.js';
import type { EventPublisher } from './event-publisher.js';

/**
 * `registry.created|updated|deleted` that no SIGKILL loses or invents, on both backends with
 * the generic collections alone (FerretDB 1.24 has no multi-document transactions), by an
 * intent written before the change:
 *
 *  1. the intent `<registry id>@<version>` is inserted (a unique key: one writer at a time may
 *     make that version; `version` is the one the change produces, a delete's is the deleted
 *     version + 1) holding the ready event and its deliveries, a digest of the document it
 *     writes and of the one it replaces (read just before);
 *  2. the change is made (compare-and-swap on the version);
 *  3. the event and deliveries are appended (idempotent, by id) and the intent removed; a change
 *     that did not happen removes its intent only.
 *
 * A writer killed between 1 and 3 leaves an intent; `recover` (at start, and periodically for
 * other replicas' leftovers) decides whether its change committed from what the store holds
 * now: the document at that version has the intent's digest (read from the document while it is
 * at that version, else from the next version's intent or event, which records the digest of
 * the document it replaced). Committed intents are appended (same event id: a duplicate
 * delivery carries the same webhook-id), the others dropped. Assumes every writer of registries
 * goes through the catalog (another service writing the collection directly makes no events).
 */

/** A document's digest (sorted keys), so equal documents compare equal whatever each backend's field order. */
export function digestOf(document: unknown): string {
  return createHash('sha256').update(canonical(document)).digest('base64url');
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  return JSON.stringify(value) ?? 'null';
}

/** The digest of "no document" (what a delete writes). */
const ABSENT = '-';

/** An intent this old was left by a writer that died (a change takes milliseconds). */
export const INTENT_GRACE_MS = 5_000;

type Kind = 'registry.created' | 'registry.updated' | 'registry.deleted';

export class RegistryOutbox {
  private readonly now: () => number;

  constructor(
    private readonly deps: {
      readonly store: RegistryStore;
      readonly events: EventStore;
      readonly publisher: EventPublisher;
      readonly logger: Logger;
      readonly now?: () => number;
    },
  ) {
    this.now = deps.now ?? Date.now;
  }

  /** `store` with each create, replace and delete announced through an intent (see above). */
  wrap(): RegistryStore {
    const { store } = this.deps;
    return {
      create: async (document) => {
        const id = document.container_registry_id;
        const intent = await this.claim('registry.created', document, 1, undefined);
        if (!intent) throw new DuplicateIdError(id);
        return this.settle(intent, () => store.create(document), true);
      },
      get: (id) => store.get(id),
      getText: (id) => store.getText(id),
      getTexts: (ids) => store.getTexts(ids),
      replaceIfVersion: async (document, expectedVersion): Promise<ReplaceResult<ContainerRegistry>> => {
        // The base is read first: the intent records its digest (what `committed` compares with).
        const current = await store.get(document.container_registry_id);
        if (!current) return { status: 'missing' };
        if (current.version !== expectedVersion) return { status: 'conflict' };
        const intent = await this.claim('registry.updated', document, expectedVersion + 1, current.document);
        if (!intent) return { status: 'conflict' };
        return this.settle(
          intent,
          () => store.replaceIfVersion(document, expectedVersion),
          (result) => result.status === 'replaced',
        );
      },
      delete: async (id) => {
        const before = await store.get(id);
        if (!before) return false;
        const intent = await this.claim(
          'registry.deleted',
          before.document,
          before.version + 1,
          before.document,
        );
        if (!intent) return false;
        // A delete is not conditional: under the claim, check nobody moved the document past what the event describes.
        const current = await store.get(id);
        if (!current || current.version !== before.version) {
          await this.deps.events.dropIntent(intent.intent_id);
          return false;
        }
        const deleted = await this.settle(
          intent,
          () => store.delete(id),
          (done) => done,
        );
        if (deleted) await this.deps.events.forgetAnnouncement(id);
        return deleted;
      },
      find: (filter, options) => store.find(filter, options),
      findPage: (filter, options) => store.findPage(filter, options),
      stream: (filter, options) => store.stream(filter, options),
      count: (filter) => store.count(filter),
      ping: () => store.ping(),
      close: () => store.close(),
    };
  }

  /**
   * Resolves the intents left by writers that died (all of them when `olderThanMs` is 0): each
   * committed one is appended, the rest dropped. Returns how many were appended.
   */
  async recover(olderThanMs = INTENT_GRACE_MS): Promise<number> {
    let appended = 0;
    for (const intent of await this.deps.events.intentsBefore(this.now() - olderThanMs)) {
      if (await this.resolve(intent)) appended++;
    }
    if (appended > 0) {
      this.deps.logger.info({ appended }, 'outbox: appended the events of changes whose writer died');
      this.deps.publisher.notify();
    }
    return appended;
  }

  /** Inserts the intent for `version` of the document; undefined when another writer holds it. */
  private async claim(
    type: Kind,
    document: ContainerRegistry,
    version: number,
    base: ContainerRegistry | undefined,
  ): Promise<StoredIntent | undefined> {
    const id = document.container_registry_id;
    const baseDigest = base ? digestOf(base) : ABSENT;
    const [prepared] = await this.deps.publisher.prepare([
      {
        type,
        registryId: id,
        registry: document,
        data: {
          container_registry: toPublic(document),
          ...(type === 'registry.deleted' ? {} : { version }),
        },
        outbox: { version, base: baseDigest },
      },
    ]);
    const intent: StoredIntent = {
      intent_id: `${id}@${version}`,
      registry_id: id,
      version,
      digest: type === 'registry.deleted' ? ABSENT : digestOf(document),
      base: baseDigest,
      created_at: this.now(),
      event: prepared!.event,
      deliveries: prepared!.deliveries,
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await this.deps.events.createIntent(intent)) return intent;
      // Held: by a live writer (a conflict), or left by a dead one (resolve it, then try once more).
      const held = await this.deps.events.getIntent(intent.intent_id);
      if (held && this.now() - held.created_at < INTENT_GRACE_MS) return undefined;
      if (held) await this.resolve(held);
    }
    return undefined;
  }

  /** Runs the change; appends the event when it happened, drops the intent when it did not. */
  private async settle<R>(
    intent: StoredIntent,
    change: () => Promise<R>,
    happened: true | ((result: R) => boolean),
  ): Promise<R> {
    let result: R;
    try {
      result = await change();
    } catch (error) {
      // Not known whether it committed (a store error): `recover` decides later. A refused create is known.
      if (error instanceof DuplicateIdError) await this.deps.events.dropIntent(intent.intent_id);
      throw error;
    }
    if (happened === true || happened(result)) {
      await this.deps.events.appendIntent(intent);
      this.deps.publisher.notify();
    } else {
      await this.deps.events.dropIntent(intent.intent_id);
    }
    return result;
  }

  /** Appends the intent's event if its change committed, drops it otherwise; true when appended. */
  private async resolve(intent: StoredIntent): Promise<boolean> {
    const committed = await this.committed(intent);
    if (committed) await this.deps.events.appendIntent(intent);
    else await this.deps.events.dropIntent(intent.intent_id);
    return committed;
  }

  private async committed(intent: StoredIntent): Promise<boolean> {
    const id = intent.registry_id;
    const current = await this.deps.store.get(id);
    // The next version's record (an intent, or the event of a change that went through) names what it replaced.
    const next = await this.deps.events.transitionAt(id, intent.version + 1);
    if (intent.digest === ABSENT) {
      // A delete of version - 1. Not committed while that document (or a later one) is there.
      if (current) return current.version < intent.version - 1; // re-created since
      return next === undefined;
    }
    if (current && current.version === intent.version) return digestOf(current.document) === intent.digest;
    return next !== undefined && next === intent.digest;
  }
}
