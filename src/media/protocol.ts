// Typed messages between the main thread (engine.ts) and the media worker (worker.ts).
// Requests that expect an answer carry a `req` number; the worker answers with the same number.
import type { EndpointMedia, EndpointStats, MediaEvent, ToneName } from './types.js';

/** workerData of the media worker. */
export interface WorkerInit {
  address: string;
  portMin: number;
  portMax: number;
  jitterDelayMs: number;
  rtcpIntervalMs: number;
  rtpTimeoutMs: number;
  cname: string;
}

/** Main thread → worker. */
export type Command =
  | { op: 'allocate'; req: number; id: string }
  | { op: 'configure'; id: string; media: EndpointMedia }
  | { op: 'conference'; conferenceId: string; endpointIds: string[] }
  | { op: 'tone'; id: string; tone: ToneName | null }
  | { op: 'release'; id: string }
  | { op: 'stats'; req: number }
  | { op: 'engine-stats'; req: number; reset: boolean }
  | { op: 'stop'; req: number };

/** Clock and load figures of the worker (since start or the last reset). */
export interface EngineStats {
  /** Wall time covered, ms. */
  elapsedMs: number;
  ticks: number;
  /** Ticks that started more than 20 ms after their due time. */
  ticksLate: number;
  maxTickLateMs: number;
  meanTickLateMs: number;
  /** Ticks skipped because the worker fell more than 10 ticks behind (timestamps jump). */
  ticksSkipped: number;
  /** Time spent inside ticks (mixing, encoding, sending), ms: mean and max per tick. */
  meanTickWorkMs: number;
  maxTickWorkMs: number;
  packetsIn: number;
  packetsOut: number;
  /** Packets handed to the socket more than 20 ms after their due time (the tick that completed them). */
  packetsOutLate: number;
  rtcpIn: number;
  rtcpOut: number;
  unknownPayload: number;
  rejectedSource: number;
  /** Event loop utilisation of the worker over the period (0..1): its busy share of one core. */
  utilisation: number;
  /** Worker thread CPU time over the period (user+system, ms) from /proc/thread-self/stat; null when unavailable. */
  cpuMs: number | null;
  /** The system (kernel) part of cpuMs: socket I/O. */
  cpuSysMs: number | null;
  endpoints: number;
  conferences: number;
}

/** Worker → main thread. */
export type Reply =
  | { op: 'ready' }
  | { op: 'fatal'; message: string }
  | { op: 'allocated'; req: number; id: string; address: string; port: number }
  | { op: 'allocate-failed'; req: number; id: string; exhausted: boolean; message: string }
  | { op: 'released'; id: string; port: number }
  | { op: 'stats'; req: number; stats: EndpointStats[] }
  | { op: 'engine-stats'; req: number; stats: EngineStats }
  | { op: 'event'; event: MediaEvent }
  | { op: 'error'; message: string; id?: string }
  | { op: 'stopped'; req: number };
