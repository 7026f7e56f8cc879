// The embedded MQTT broker of the default installation: aedes (MQTT 3.1.1 only; clients must use
// protocol version 4) in this process, on a TCP listener that should stay on loopback.
// Retained messages and last wills are kept in memory: a restart of the bridge starts empty,
// and the bridge re-publishes its retained topics when it connects.
import net from 'node:net';
import { Aedes } from 'aedes';
import './packet-numbers.js';

export interface EmbeddedBroker {
  /** The port it listens on (the one chosen by the kernel when asked for port 0). */
  port: number;
  /** Disconnects every client and stops listening. Never rejects. */
  close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: { host: string; port: number }): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
  // A client's protocol error or dropped socket concerns that client only.
  broker.on('clientError', () => {});
  broker.on('connectionError', () => {});

  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    broker.handle(socket);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? 'the port is in use (another broker, or another bridge?)'
      : e.code === 'EADDRNOTAVAIL' ? 'no interface has that address'
      : e.code === 'EACCES' ? 'permission denied'
      : e.message;
    throw new Error(`embedded MQTT broker cannot listen on ${opts.host}:${opts.port}: ${why}${e.code ? ` (${e.code})` : ''}`);
  }
  server.on('error', () => {}); // after listening, errors concern single connections

  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  let closing: Promise<void> | null = null;

  return {
    port,
    close(): Promise<void> {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 2000);
          broker.close(() => { clearTimeout(t); resolve(); });
        });
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
