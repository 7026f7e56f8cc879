// A tcpdump capture of the bridge's SIP port on loopback, for the latency figures: nanosecond
// timestamps when this tcpdump has them. Used by bench/run.js and bench/lib/sip-under-media.js.
import { join } from 'node:path';
import { sleep, spawnTracked, stopChild } from './procs.js';

export const tcpdumpCapture = {
  async start({ bridgePort, dir }) {
    const file = join(dir, 'latency.pcap');
    const filter = `udp and port ${bridgePort}`;
    for (const precision of [['--time-stamp-precision=nano'], []]) {
      const child = spawnTracked('tcpdump', 'tcpdump', ['-i', 'lo', '-n', '-B', '32768', ...precision, '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; });
      const ready = await Promise.race([
        new Promise((res) => { const check = () => (/listening on/.test(stderr) ? res(true) : setTimeout(check, 10)); check(); }),
        child.exited.then(() => false),
        sleep(5000).then(() => false),
      ]);
      if (ready) return { child, file, stderr: () => stderr, filter };
      await stopChild(child, 'SIGKILL');
      if (!precision.length) throw new Error(`tcpdump did not start: ${stderr.trim()}`);
    }
    throw new Error('unreachable');
  },
  async stop(cap) {
    await sleep(200); // last packets
    await stopChild(cap.child, 'SIGINT', 3000); // SIGINT: tcpdump flushes the file and prints its counts
    const dropped = /(\d+) packets dropped by kernel/.exec(cap.stderr())?.[1];
    const captured = /(\d+) packets captured/.exec(cap.stderr())?.[1];
    return { file: cap.file, filter: cap.filter, captured: captured ? Number(captured) : null, droppedByKernel: dropped ? Number(dropped) : null };
  },
};
