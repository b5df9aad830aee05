/**
 * Probes `<url>/healthz` one request at a time, 20 ms apart, for `ms`; resolves with each probe's
 * latency (ms). A probe that is not answered 200 within 5 s fails it: the server stopped serving.
 */
export async function healthzLatencies(url: string, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  for (const until = performance.now() + ms; performance.now() < until;) {
    const started = performance.now();
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return latencies;
}
