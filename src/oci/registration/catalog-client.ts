/** An answer of the catalog: status and parsed JSON envelope (undefined when not JSON). */
export interface CatalogAnswer {
  readonly status: number;
  readonly body: { success?: boolean; data?: unknown; error?: string } | undefined;
}

/** The few catalog calls a self-registering registry makes, with its token and a timeout. */
export class CatalogClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 5_000,
  ) {}

  /** Sends one JSON request; rejects on a network error or timeout (the caller retries). */
  async call(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<CatalogAnswer> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
      redirect: 'error',
    });
    const text = await response.text();
    let parsed: CatalogAnswer['body'];
    try {
      parsed = JSON.parse(text) as CatalogAnswer['body'];
    } catch {
      parsed = undefined;
    }
    return { status: response.status, body: parsed };
  }
}
