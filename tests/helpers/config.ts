// A valid configuration for integration tests, parsed through the real schema (defaults apply).
//
//   const config = testConfig({
//     callTakerTarget: `sip:acd@127.0.0.1:${ctPort}`,
//     regionTargets: [`sip:amk@127.0.0.1:${amkPort}`],
//     region: { ringTimerS: 0.5 },                 // merged into the one default region
//     sip: { timers: { t1Ms: 50 } },               // any other key: deep-merged
//   });
//
// Defaults for tests: SIP on UDP+TCP 127.0.0.1 port 0 (read the bound ports from the running
// bridge), no OPTIONS probing, trunk and call-taker ACLs = loopback (IPv4 and IPv6), log level
// from TEST_LOG_LEVEL (default silent). Objects are deep-merged; lists replace the default list.

import { validateConfig, formatConfigErrors } from '../../src/config/load.js';
import type { Config, ConfigInput, RegionInput } from '../../src/config/schema.js';

/** Partial at every object level; lists are taken whole. */
export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export interface TestConfigOptions extends DeepPartial<ConfigInput> {
  /** callTakers.target (default sip:acd@127.0.0.1:5080). */
  callTakerTarget?: string;
  /** targets of the default region "hovedstaden" (default [sip:amk@127.0.0.1:5090]). */
  regionTargets?: string[];
  /** Keys merged into the default region (ignored when `regions` is given). */
  region?: Partial<RegionInput>;
  /** Directory for relative passwordFile paths (default: cwd). */
  baseDir?: string;
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge: objects merge key by key, anything else (lists included) replaces; undefined is skipped. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/** The raw (input) test config before validation; handy to write a YAML file from. */
export function testConfigInput(opts: TestConfigOptions = {}): ConfigInput {
  const { callTakerTarget, regionTargets, region, baseDir: _baseDir, ...overrides } = opts;
  const level = process.env.TEST_LOG_LEVEL ?? 'silent';
  const base: ConfigInput = {
    node: 'test',
    log: { level: level as Config['log']['level'] },
    sip: {
      listen: [
        { transport: 'udp', address: '127.0.0.1', port: 0 },
        { transport: 'tcp', address: '127.0.0.1', port: 0 },
      ],
    },
    trunks: [{ id: 'trunk-a', networks: LOOPBACK, probe: null }],
    callTakers: { target: callTakerTarget ?? 'sip:acd@127.0.0.1:5080', networks: LOOPBACK, probe: false },
    desks: [{ id: 'desk-1', name: 'Desk 1', users: ['1001'] }],
    regions: [
      {
        id: 'hovedstaden',
        name: 'Region Hovedstaden',
        code: '01',
        targets: regionTargets ?? ['sip:amk@127.0.0.1:5090'],
        probe: false,
        ...region,
      },
    ],
    routing: { defaultRegion: 'hovedstaden', rules: [] },
    probes: { intervalS: 3600 },
    // No endpoint probing unless a test asks; every message of a test is a test message.
    messages: { probeIntervalS: 0, test: true, backoff: { initialMs: 50, maxMs: 500 } },
    // Tests run in parallel: an embedded broker takes any free port.
    mqtt: { embedded: { port: 0 } },
  };
  return deepMerge(base, overrides) as ConfigInput;
}

/** A validated `Config` for tests; throws with every config error if the overrides are invalid. */
export function testConfig(opts: TestConfigOptions = {}): Config {
  const result = validateConfig(testConfigInput(opts), opts.baseDir === undefined ? {} : { baseDir: opts.baseDir });
  if (!result.ok) throw new Error(`invalid test config:\n${formatConfigErrors('testConfig', result.errors)}`);
  return result.config;
}
