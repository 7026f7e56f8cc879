// The installer into a staging root (DESTDIR): everything in its place, idempotent, an edited
// configuration kept, and uninstall keeps configuration and journal.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const run = (dest: string, ...args: string[]) => execFileSync('bash', [join(ROOT, 'systemd/install.sh'), ...args], { env: { ...process.env, DESTDIR: dest }, encoding: 'utf8' });

t.test('install twice, edit the config, install again, uninstall', async (t) => {
  const dest = mkdtempSync(join(tmpdir(), 'amk-install-'));
  t.teardown(() => rmSync(dest, { recursive: true, force: true }));
  run(dest);
  for (const f of ['opt/amk-bridge/dist/cli/main.js', 'opt/amk-bridge/hardware/profiles/lcus.yaml', 'etc/systemd/system/amk-bridge.service',
    'etc/udev/rules.d/99-amk-bridge-lamps.rules', 'etc/kamailio/amk-edge.cfg.example', 'etc/amk-bridge/amk-bridge.yaml', 'var/lib/amk-bridge']) {
    t.ok(existsSync(join(dest, f)), f);
  }
  const conf = join(dest, 'etc/amk-bridge/amk-bridge.yaml');
  t.match(readFileSync(conf, 'utf8'), /path: \/var\/lib\/amk-bridge\/journal\.sqlite/, 'production paths in the installed example');
  const check = execFileSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), 'check-config', conf], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  t.match(check, /: ok/, 'the installed configuration is valid');
  writeFileSync(conf, `${readFileSync(conf, 'utf8')}\n# edited by the operator\n`);
  writeFileSync(join(dest, 'var/lib/amk-bridge/journal.sqlite'), 'journal');
  run(dest);
  t.match(readFileSync(conf, 'utf8'), /edited by the operator/, 'a second install keeps the configuration');
  run(dest, 'uninstall');
  t.notOk(existsSync(join(dest, 'opt/amk-bridge')), 'the program is gone');
  t.notOk(existsSync(join(dest, 'etc/systemd/system/amk-bridge.service')), 'the unit is gone');
  t.ok(existsSync(conf), 'uninstall keeps the configuration');
  t.equal(readFileSync(join(dest, 'var/lib/amk-bridge/journal.sqlite'), 'utf8'), 'journal', 'and the journal');
});
