import type { Registry } from 'prom-client';
import type { HealthService } from '../domain/health-service.js';
import type { ImageService } from '../domain/images.js';
import type { HeartbeatService } from '../domain/heartbeats.js';
import type { RegistryEventService } from '../domain/registry-events.js';
import type { RegistryService } from '../domain/registries.js';
import type { EventStream } from '../events/event-stream.js';
import type { WebhookService } from '../events/webhooks.js';

/** What the route handlers are built from (one set per app, see app.ts). */
export interface CatalogServices {
  readonly registries: RegistryService;
  /** Absent when health checking is off: the health routes are then not registered. */
  readonly health: HealthService | undefined;
  /** Absent without an image index: the image routes are then not registered. */
  readonly images?: ImageService | undefined;
  /** Self-registration, heartbeats and events; absent without a heartbeat store (routes not registered). */
  readonly selfRegistration?:
    { readonly heartbeats: HeartbeatService; readonly events: RegistryEventService } | undefined;
  /** Resolves when the store answers (`/readyz`). */
  readonly ping: () => Promise<void>;
  readonly metrics: Registry;
  /** The bundled OpenAPI document (`/openapi.json`, `/docs`). */
  readonly openapi: Record<string, unknown>;
  /** Absent without an event store: the webhook and event routes are then not registered. */
  readonly webhooks?: WebhookService | undefined;
  readonly eventStream?: EventStream | undefined;
}
