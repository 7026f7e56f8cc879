// Start the real daemon in-process for a test, on port 0, torn down with the test.
import { startBridge, type Bridge } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { testConfig, type TestConfigOptions } from './config.js';
import type { Config } from '../../src/config/schema.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startTestBridge(t: Teardown, opts: TestConfigOptions = {}, start: { dnsServers?: string[]; configPath?: string } = {}): Promise<{ bridge: Bridge; config: Config }> {
  // Each bridge gets its own journal in its own directory unless the test names one.
  if (!opts.journal?.path) {
    const dir = mkdtempSync(join(tmpdir(), 'amk-journal-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    opts = {
      ...opts,
      journal: { ...opts.journal, path: join(dir, 'journal.sqlite') },
      recontact: { path: join(dir, 'recontact.sqlite'), keyFile: join(dir, 'recontact.key'), ...opts.recontact },
    };
  }
  const config = testConfig(opts);
  const logger = createLogger({ level: config.log.level, pretty: false, destination: process.stderr });
  const bridge = await startBridge(config, { logger, dnsServers: start.dnsServers, configPath: start.configPath });
  t.teardown(() => bridge.stop());
  return { bridge, config };
}

/** Resolve when `pred` holds, polling; reject after `ms`. */
export async function waitFor(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
