/** CPU time and resident memory of another process, read from /proc (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICK_MS = 10; // USER_HZ = 100 on Linux

/** utime and stime of a process (all its threads) in ms, and its minor page faults so far. */
export function cpuTimes(pid: number): { userMs: number; systemMs: number; minorFaults: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return {
    userMs: Number(fields[11]) * CLOCK_TICK_MS,
    systemMs: Number(fields[12]) * CLOCK_TICK_MS,
    minorFaults: Number(fields[7]),
  };
}

/** utime + stime of a process, in ms. */
export function cpuMs(pid: number): number {
  const { userMs, systemMs } = cpuTimes(pid);
  return userMs + systemMs;
}

/**
 * Resident memory of a process in MiB; 0 once it has exited (the measurement reports that).
 * `RssAnon`: its own memory only, without the file pages it maps (SQLite's memory-mapped database).
 */
export function rssMiB(pid: number, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return Number(match?.[1] ?? 0) / 1024;
}

/**
 * Proportional set size (MiB) of a process and all its descendants: for a server made of many
 * processes sharing memory (PostgreSQL's postmaster, backends and shared buffers), where summing
 * RSS would count the shared buffers once per process.
 */
export function treePssMiB(rootPid: number): number {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ');
      parents.set(Number(entry), Number(fields[1]));
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  for (const pid of parents.keys()) {
    let at: number | undefined = pid;
    while (at !== undefined && at !== rootPid && at > 1) at = parents.get(at);
    if (at !== rootPid) continue;
    try {
      const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      total += Number(match?.[1] ?? 0) / 1024;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}
