// The floor under the media engine (a part of bench/media.js): what Node's UDP sockets alone cost
// per packet on this machine, with the engine's traffic and nothing else.
//
// A worker thread (like the engine's) binds the same 3N RTP sockets (even ports from `portMin`,
// plus the RTCP socket above each, bound and idle as in the engine), receives every packet
// through dgram's 'message' event and does nothing with it but remember where it came from, and
// every 20 ms (the same drift-free clock: setTimeout against t0 + 20n) sends one 172-byte
// packet from every socket to that source — one Buffer and one send() per packet, as the engine
// does. No jitter buffer, no mixing, no encoding, no RTCP. Its CPU time per packet (from
// /proc/thread-self/stat) is the part of the engine's per-packet cost that is Node's and the
// kernel's; the engine's own work is the difference.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Starts the floor worker; resolves to { ports, stats(), stop() } once its sockets are bound. */
export function startFloor({ endpoints, portMin }) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { endpoints, portMin } });
  let pending = null;
  const ready = new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m) => {
      if (m.op === 'ready') resolve(m.ports);
      else if (m.op === 'error') reject(new Error(m.message));
      else if (m.op === 'stats' && pending) { const p = pending; pending = null; p(m.stats); }
    });
  });
  return ready.then((ports) => ({
    ports,
    /** CPU and packet counts since the previous call. */
    stats: () => new Promise((resolve) => { pending = resolve; worker.postMessage({ op: 'stats' }); }),
    stop: () => worker.terminate(),
  }));
}

function threadCpuMs() {
  try {
    const s = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * 10, sys: Number(f[12]) * 10 };
  } catch {
    return null;
  }
}

async function runWorker() {
  const { endpoints, portMin } = workerData;
  const lookup = (address, _family, cb) => cb(null, address, 4);
  const bind = (port) => new Promise((resolve, reject) => {
    const s = createSocket({ type: 'udp4', lookup });
    s.once('error', reject);
    s.bind({ address: '127.0.0.1', port, exclusive: true }, () => { s.off('error', reject); resolve(s); });
  });
  const eps = [];
  let rx = 0;
  let tx = 0;
  try {
    for (let i = 0; i < endpoints; i++) {
      const rtp = await bind(portMin + 2 * i);
      const rtcp = await bind(portMin + 2 * i + 1);
      const ep = { rtp, rtcp, address: null, port: 0 };
      rtp.on('message', (msg, rinfo) => {
        rx++;
        if (ep.address === null) { ep.address = rinfo.address; ep.port = rinfo.port; }
      });
      eps.push(ep);
    }
  } catch (err) {
    parentPort.postMessage({ op: 'error', message: `floor: cannot bind: ${err.message}` });
    return;
  }
  const t0 = performance.now();
  let n = 0;
  const tick = () => {
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[i];
      if (ep.address === null) continue;
      const b = Buffer.allocUnsafe(172);
      b[0] = 0x80;
      b[1] = 0;
      ep.rtp.send(b, ep.port, ep.address);
      tx++;
    }
    n++;
    const d = t0 + 20 * n - performance.now();
    setTimeout(tick, d > 1 ? d : 0);
  };
  tick();
  let since = { at: performance.now(), cpu: threadCpuMs(), rx, tx };
  parentPort.on('message', () => {
    const now = { at: performance.now(), cpu: threadCpuMs(), rx, tx };
    const cpu = now.cpu && since.cpu ? { user: now.cpu.user - since.cpu.user, sys: now.cpu.sys - since.cpu.sys } : null;
    parentPort.postMessage({ op: 'stats', stats: { elapsedMs: now.at - since.at, packetsIn: now.rx - since.rx, packetsOut: now.tx - since.tx, cpuMs: cpu ? cpu.user + cpu.sys : null, cpuSysMs: cpu ? cpu.sys : null } });
    since = now;
  });
  parentPort.postMessage({ op: 'ready', ports: eps.map((e) => e.rtp.address().port) });
}

if (!isMainThread && workerData?.endpoints) void runWorker();
