// Loaded into the daemon under test with `node --import <this file>` by the SIP-under-media part
// of bench/media.js (bench/lib/sip-under-media.js); does nothing unless AMK_BENCH_CONFERENCES is
// set. It gives the daemon's own media engine a standing load of N three-party conferences, as
// bench/media.js sets them up for the engine alone: when the daemon starts its MediaEngine, 3N
// endpoints are allocated on it, configured sendrecv PCMU 20 ms toward the bench's phones
// (AMK_BENCH_PHONES: {"ports": [...], "monitorPort": n}; endpoint i goes to the monitor socket
// for i < 3, else to ports[i % ports.length]) and put into N conferences. The SIP calls of the
// load run take their endpoints from the same engine and the same worker thread, next to them.
//
// Files (paths in the environment):
//   AMK_BENCH_MEDIA_READY  written once the conferences stand: {"ports": [engine RTP ports]} or
//                          {"error": "..."};
//   AMK_BENCH_MEDIA_STATS  one JSON line per second: the engine's clock and load figures since
//                          the previous line (MediaEngine.engineStats(true)) with the wall time
//                          (`atUs`, process.hrtime in µs, the clock bench/run.js uses too) and
//                          how long the worker took to answer a request (`replyMs`: p50 and max of
//                          one small request every 50 ms) — a call's endpoint allocation waits
//                          for such an answer when no spare endpoint is ready.
// The daemon's code is not changed: MediaEngine.start is wrapped before the daemon imports it.
import { appendFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const N = Number(process.env.AMK_BENCH_CONFERENCES ?? -1);

if (N >= 0) {
  const { MediaEngine } = await import(new URL('../../dist/media/engine.js', import.meta.url).href);
  const start = MediaEngine.start;
  MediaEngine.start = async function benchStart(opts) {
    const engine = await start.call(this, opts);
    void standingLoad(engine).catch((err) => {
      writeFileSync(process.env.AMK_BENCH_MEDIA_READY, JSON.stringify({ error: String(err?.stack ?? err) }));
    });
    return engine;
  };
}

async function standingLoad(engine) {
  const phones = JSON.parse(process.env.AMK_BENCH_PHONES ?? '{}');
  const eps = [];
  for (let i = 0; i < 3 * N; i++) eps.push(await engine.allocate());
  eps.forEach((ep, i) => {
    const port = i < 3 ? phones.monitorPort : phones.ports[i % phones.ports.length];
    engine.configure(ep.id, {
      remote: { address: '127.0.0.1', port, rtcpPort: port }, codec: 'PCMU', payloadType: 0, telephoneEvent: 101,
      ptimeMs: 20, direction: 'sendrecv', latchNetworks: [],
    });
  });
  for (let c = 0; c < N; c++) engine.setConference(`bench-conf${c}`, [eps[3 * c].id, eps[3 * c + 1].id, eps[3 * c + 2].id]);
  await engine.engineStats(true);
  writeFileSync(process.env.AMK_BENCH_MEDIA_READY, JSON.stringify({ ports: eps.map((e) => e.port) }));
  const statsPath = process.env.AMK_BENCH_MEDIA_STATS;
  // How long the worker takes to answer a request from the main thread (a call's endpoint
  // allocation waits for that when no spare one is ready): a small request every 50 ms.
  let rtts = [];
  const probe = setInterval(() => {
    const t = performance.now();
    engine.engineStats(false).then(() => rtts.push(performance.now() - t), () => clearInterval(probe));
  }, 50);
  probe.unref();
  const timer = setInterval(() => {
    const r = rtts.sort((a, b) => a - b);
    rtts = [];
    engine.engineStats(true).then(
      (s) => appendFileSync(statsPath, `${JSON.stringify({
        atUs: Number(process.hrtime.bigint() / 1000n), ...s,
        replyMs: { n: r.length, p50: r[Math.floor(r.length / 2)] ?? null, max: r[r.length - 1] ?? null },
      })}\n`),
      () => clearInterval(timer), // the engine stopped (the daemon is shutting down)
    );
  }, 1000);
  timer.unref();
}
