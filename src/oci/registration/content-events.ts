import type { Content } from '../domain/content.js';
import type { Reference } from '../domain/names.js';

/** A manifest pushed or deleted, as the registry tells its catalog (described when sent). */
export interface ContentEvent {
  readonly action: 'push' | 'delete';
  readonly repository: string;
  /** The tag pushed or deleted; null for a push or delete by digest. */
  readonly tag: string | null;
  /** The manifest's digest; undefined for a tag delete. */
  readonly digest: string | undefined;
  readonly timestamp: string;
}

/**
 * `content` whose successful manifest PUTs and DELETEs also call `emit` (synchronously, after
 * the write is durable; `emit` only queues, so pushes never wait for the catalog).
 */
export function notifyingContent(content: Content, emit: (event: ContentEvent) => void): Content {
  const notifying = Object.create(content) as Content;
  notifying.putManifest = async (name: string, reference: Reference, body: Buffer, contentType?: string) => {
    const result = await content.putManifest(name, reference, body, contentType);
    emit({
      action: 'push',
      repository: name,
      tag: reference.kind === 'tag' ? reference.tag : null,
      digest: result.digest.value,
      timestamp: new Date().toISOString(),
    });
    return result;
  };
  notifying.deleteManifest = async (name: string, reference: Reference) => {
    await content.deleteManifest(name, reference);
    emit({
      action: 'delete',
      repository: name,
      tag: reference.kind === 'tag' ? reference.tag : null,
      digest: reference.kind === 'digest' ? reference.digest.value : undefined,
      timestamp: new Date().toISOString(),
    });
  };
  return notifying;
}
