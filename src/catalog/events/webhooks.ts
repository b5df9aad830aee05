import { randomUUID } from 'node:crypto';
import type { ValidateFunction } from 'ajv';
import type { SchemaSet } from '../../shared/schemas.js';
import { toSchemaIssues } from '../../shared/schemas.js';
import { NotFoundError, UnprocessableError, ValidationError } from '../errors.js';
import { parseFilter } from '../language/query-language.js';
import type { DeliveryStatus, EventStore, StoredDelivery, StoredWebhook } from '../store/event-store.js';
import type { CredentialCipher } from '../domain/credential-cipher.js';
import type { EventPublisher } from './event-publisher.js';
import { typeMatcher } from './event-types.js';
import type { Page } from '../domain/parameters.js';
import { secretKey } from './webhook-signature.js';

/** Why a URL may not be a webhook destination (the probe's SSRF policy), or undefined. */
export type DestinationCheck = (url: string) => Promise<string | undefined>;

export interface WebhookServiceDeps {
  readonly store: EventStore;
  readonly schemas: SchemaSet;
  readonly publisher: EventPublisher;
  /** Seals secrets at rest; without one, webhooks are refused (like registry credentials). */
  readonly cipher: CredentialCipher | undefined;
  readonly checkDestination: DestinationCheck;
  readonly now?: () => number;
  readonly newId?: () => string;
}

/** A webhook as clients see it: everything but the secret. */
export interface WebhookView {
  readonly webhook_id: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly filter: Record<string, unknown>;
  readonly created_at: string;
  readonly updated_at: string;
}

/** A delivery as clients see it (`GET /webhooks/<id>/deliveries`). */
export interface DeliveryView extends Omit<StoredDelivery, 'next_attempt_at' | 'window_start'> {
  readonly next_attempt_at: string | null;
}

const SECRET_FIELD = 'secret';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Webhook subscriptions: validation, write-only sealed secrets, the SSRF check, deliveries and redelivery. */
export class WebhookService {
  private readonly validateCreate: ValidateFunction;
  private readonly validateUpdate: ValidateFunction;
  private readonly now: () => number;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.validateCreate = deps.schemas.validator('webhook.schema.json', '/$defs/Create');
    this.validateUpdate = deps.schemas.validator('webhook.schema.json', '/$defs/Update');
    this.now = deps.now ?? Date.now;
  }

  async create(body: unknown): Promise<WebhookView> {
    if (!this.validateCreate(body))
      throw ValidationError.of(toSchemaIssues(this.validateCreate.errors), 'Invalid webhook');
    const input = body as { url: string; events: string[]; filter?: unknown; secret: string };
    const id = (this.deps.newId ?? randomUUID)();
    const at = new Date(this.now()).toISOString();
    const webhook: StoredWebhook = {
      webhook_id: id,
      ...(await this.checked(input)),
      secret: this.seal(input.secret, id),
      created_at: at,
      updated_at: at,
    };
    await this.deps.store.createWebhook(webhook);
    this.deps.publisher.invalidateWebhooks();
    return view(webhook);
  }

  async get(rawId: string): Promise<WebhookView> {
    return view((await this.stored(rawId)).webhook);
  }

  async list(page: Pick<Page, 'limit' | 'skip'>): Promise<{ items: WebhookView[]; total: number }> {
    const [items, total] = await Promise.all([
      this.deps.store.listWebhooks(page.skip, page.limit),
      this.deps.store.countWebhooks(),
    ]);
    return { items: items.map(view), total };
  }

  /** Replaces url, events and filter; a secret given replaces the stored one. */
  async update(rawId: string, body: unknown): Promise<WebhookView> {
    if (!this.validateUpdate(body))
      throw ValidationError.of(toSchemaIssues(this.validateUpdate.errors), 'Invalid webhook');
    const input = body as { url: string; events: string[]; filter?: unknown; secret?: string };
    const checked = await this.checked(input);
    for (let attempt = 0; attempt < 20; attempt++) {
      const { webhook, version } = await this.stored(rawId);
      const next: StoredWebhook = {
        ...webhook,
        ...checked,
        secret: input.secret === undefined ? webhook.secret : this.seal(input.secret, webhook.webhook_id),
        updated_at: new Date(this.now()).toISOString(),
      };
      const result = await this.deps.store.replaceWebhook(next, version);
      if (result === 'missing') break;
      if (result === 'replaced') {
        this.deps.publisher.invalidateWebhooks();
        return view(next);
      }
    }
    return this.get(rawId);
  }

  /** Deletes the subscription with its queue of deliveries. */
  async delete(rawId: string): Promise<void> {
    const id = parseWebhookId(rawId);
    if (!(await this.deps.store.deleteWebhook(id))) throw notFound(id);
    this.deps.publisher.invalidateWebhooks();
  }

  async deliveries(
    rawId: string,
    page: Pick<Page, 'limit' | 'skip'>,
    status: string | undefined,
  ): Promise<{ items: DeliveryView[]; total: number }> {
    const { webhook } = await this.stored(rawId);
    if (status !== undefined && !['pending', 'delivered', 'failed'].includes(status))
      throw ValidationError.of(
        [{ pointer: '/status', message: 'must be pending, delivered or failed' }],
        'Invalid status',
      );
    const { items, total } = await this.deps.store.deliveriesOf(webhook.webhook_id, {
      status: status as DeliveryStatus | undefined,
      ...page,
    });
    return { items: items.map(deliveryView), total };
  }

  /**
   * Puts a delivery back in its subscription's queue, due now, with a fresh retry window. It
   * keeps its place (event order) and its `webhook-id`, so a receiver can tell it is the same event.
   */
  async redeliver(rawId: string, deliveryId: string): Promise<DeliveryView> {
    const { webhook } = await this.stored(rawId);
    for (let attempt = 0; attempt < 20; attempt++) {
      const found = await this.deps.store.getDelivery(deliveryId);
      if (!found || found.delivery.webhook_id !== webhook.webhook_id)
        throw new NotFoundError(
          deliveryId,
          `No delivery ${deliveryId.slice(0, 128)} of webhook ${webhook.webhook_id}`,
        );
      const now = this.now();
      const next: StoredDelivery = {
        ...found.delivery,
        status: 'pending',
        next_attempt_at: now,
        window_start: now,
      };
      if (await this.deps.store.replaceDelivery(next, found.version)) {
        this.deps.publisher.notify();
        return deliveryView(next);
      }
    }
    throw new UnprocessableError(`Delivery ${deliveryId} is changing too fast; retry`);
  }

  /** The plain secret of a stored subscription, for signing (never for a response). */
  openSecret(webhook: StoredWebhook): string {
    if (!this.deps.cipher) throw new Error('no credentials key to open webhook secrets');
    return this.deps.cipher.open(webhook.secret, webhook.webhook_id, SECRET_FIELD);
  }

  private async checked(input: {
    url: string;
    events: string[];
    filter?: unknown;
  }): Promise<Pick<StoredWebhook, 'url' | 'events' | 'filter'>> {
    const issues = input.events.flatMap((pattern, i) =>
      typeMatcher(pattern)
        ? []
        : [{ pointer: `/events/${i}`, message: `names no event type (${pattern.slice(0, 64)})` }],
    );
    if (issues.length > 0) throw ValidationError.of(issues, 'Invalid webhook');
    let filter: Record<string, unknown>;
    try {
      filter = parseFilter(input.filter ?? {}) as Record<string, unknown>;
    } catch (error) {
      if (error instanceof ValidationError)
        throw new ValidationError(
          `Invalid webhook filter: ${error.message}`,
          error.issues.map((issue) => ({ ...issue, pointer: `/filter${issue.pointer}` })),
        );
      throw error;
    }
    const problem = await this.deps.checkDestination(input.url);
    if (problem !== undefined)
      throw new UnprocessableError(`Webhook URL ${input.url.slice(0, 256)} ${problem}`);
    return { url: input.url, events: [...input.events], filter };
  }

  private seal(secret: string, id: string): string {
    if (!secretKey(secret))
      throw ValidationError.of(
        [{ pointer: '/secret', message: 'must be whsec_ followed by base64 of 24 to 64 bytes' }],
        'Invalid webhook',
      );
    if (!this.deps.cipher)
      throw new UnprocessableError(
        'This server has no credentials key (CREDENTIALS_KEYS), so it cannot store webhook secrets',
      );
    return this.deps.cipher.seal(secret, id, SECRET_FIELD);
  }

  private async stored(rawId: string): Promise<{ webhook: StoredWebhook; version: number }> {
    const id = parseWebhookId(rawId);
    const found = await this.deps.store.getWebhook(id);
    if (!found) throw notFound(id);
    return found;
  }
}

function parseWebhookId(raw: string): string {
  const id = raw.toLowerCase();
  if (!UUID.test(id))
    throw ValidationError.of(
      [{ pointer: '/webhook_id', message: 'must be a UUID' }],
      `Invalid webhook id "${raw.slice(0, 64)}"`,
    );
  return id;
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(id, `No webhook ${id}`);
}

function view(webhook: StoredWebhook): WebhookView {
  const { webhook_id, url, events, filter, created_at, updated_at } = webhook;
  return { webhook_id, url, events, filter, created_at, updated_at };
}

function deliveryView(delivery: StoredDelivery): DeliveryView {
  const { window_start: _window, next_attempt_at, ...rest } = delivery;
  return {
    ...rest,
    next_attempt_at: delivery.status === 'pending' ? new Date(next_attempt_at).toISOString() : null,
  };
}
