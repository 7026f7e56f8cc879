// A tiny authoritative DNS server over UDP for tests: answers A, AAAA and SRV questions from a
// records table, NODATA for a known name without that type, NXDOMAIN otherwise. Names can be
// set to be dropped (no answer, to test timeouts) or to answer SERVFAIL.

import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { Answer, Question } from 'dns-packet';

export type TestRecord =
  | { type: 'A' | 'AAAA'; name: string; address: string; ttl?: number }
  | { type: 'SRV'; name: string; priority: number; weight: number; port: number; target: string; ttl?: number };

export interface DnsQueryLog {
  name: string;
  type: string;
}

export interface TestDnsServer {
  port: number;
  /** Every question received, in order (including dropped ones). */
  queries: DnsQueryLog[];
  /** Number of questions received, optionally only for this name (case-insensitive) and type. */
  count(name?: string, type?: string): number;
  /** Replace the records table. */
  setRecords(records: TestRecord[]): void;
  /** Names (case-insensitive) whose questions get no answer at all. */
  drop: Set<string>;
  /** Names whose questions are answered with SERVFAIL. */
  servfail: Set<string>;
  close(): Promise<void>;
}

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

export async function startDnsServer(records: TestRecord[] = []): Promise<TestDnsServer> {
  const socket = dgram.createSocket('udp4');
  let table = records;
  const queries: DnsQueryLog[] = [];
  const drop = new Set<string>();
  const servfail = new Set<string>();
  const has = (set: Set<string>, name: string): boolean => [...set].some((n) => norm(n) === norm(name));

  socket.on('message', (msg, rinfo) => {
    let query;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const questions: Question[] = query.questions ?? [];
    for (const q of questions) queries.push({ name: norm(q.name), type: q.type });
    const q = questions[0];
    if (!q || has(drop, q.name)) return;

    let rcode = 'NOERROR';
    const answers: Answer[] = [];
    if (has(servfail, q.name)) rcode = 'SERVFAIL';
    else {
      const named = table.filter((r) => norm(r.name) === norm(q.name));
      if (named.length === 0) rcode = 'NXDOMAIN';
      for (const r of named) {
        if (r.type !== q.type) continue;
        const ttl = r.ttl ?? 300;
        if (r.type === 'SRV') {
          answers.push({ type: 'SRV', name: q.name, ttl, data: { priority: r.priority, weight: r.weight, port: r.port, target: r.target } });
        } else {
          answers.push({ type: r.type, name: q.name, ttl, data: r.address });
        }
      }
    }
    const rcodeBits = rcode === 'NXDOMAIN' ? 3 : rcode === 'SERVFAIL' ? 2 : 0;
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      // QR is set by type; AA, copy RD, RCODE in the low 4 bits.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | rcodeBits,
      questions,
      answers,
    });
    socket.send(response, rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });

  return {
    port: socket.address().port,
    queries,
    count(name?: string, type?: string) {
      return queries.filter((q) => (name === undefined || q.name === norm(name)) && (type === undefined || q.type === type)).length;
    },
    setRecords(r: TestRecord[]) {
      table = r;
    },
    drop,
    servfail,
    close() {
      return new Promise<void>((resolve) => socket.close(() => resolve()));
    },
  };
}
