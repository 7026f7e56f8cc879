// The configuration schema: one zod definition gives the TypeScript types (`Config`, with every
// default applied), the runtime validation behind `check-config`/`run`/SIGHUP, and (through
// ./json-schema.ts) the draft-07 JSON Schema that operators' editors use.
//
// Conventions:
// - every object is strict: an unknown key is an error (usually a typo in a safety-relevant file);
// - every key has a `.describe()` text: it is what operators read in their editor;
// - objects and lists use `.prefault()` so their default is parsed like user input (inner
//   defaults and transforms apply, and every parse gets fresh objects);
// - cross-field rules live in `checkConfig` (root `.superRefine` that also runs when other keys
//   are already wrong, so one run reports every bad key).

import { BlockList, isIP } from 'node:net';
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Leaf validators

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** `sip:` / `sips:` URI with a non-empty host part; no whitespace, no angle brackets or quotes. */
export const SIP_URI_RE = /^[sS][iI][pP][sS]?:([^\s@<>"]+@)?[^\s@<>";?]+([;?][^\s<>"]*)?$/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
/** RFC 3261 token (header names). */
const TOKEN_RE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** Rough shape of an address or CIDR, for editors; `parseCidr` does the real check. */
const CIDR_SHAPE_RE = /^[0-9A-Fa-f:.]+(\/[0-9]{1,3})?$/;
const IP_SHAPE_RE = /^[0-9A-Fa-f:.]+$/;

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128 network).
 * Returns an error text instead of throwing.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${address}" is not an IPv4 or IPv6 address`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) return `prefix length "/${p}" must be 0..${max} for ${family}`;
    prefix = Number(p);
  }
  try {
    new BlockList().addSubnet(address, prefix, family);
  } catch (err) {
    return (err as Error).message;
  }
  return { address, prefix, family };
}

/** A `BlockList` matching any of the (already validated) CIDR networks: the source ACL. */
export function networksToBlockList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const n of networks) {
    const cidr = parseCidr(n);
    if (typeof cidr === 'string') throw new Error(`invalid network "${n}": ${cidr}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

/** `RegExp` compile error text, or null when the pattern compiles. */
export function regexError(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const idString = (what: string) =>
  z.string().regex(ID_RE, {
    error: `must be a ${what} id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
  });

const sipUri = () =>
  z.string().regex(SIP_URI_RE, { error: 'must be a SIP URI starting with sip: or sips: (for example sip:amk@192.0.2.10:5060)' });

const httpUrl = () =>
  z.string().regex(/^https?:\/\/[^\s/?#]+[^\s]*$/i, { error: 'must be an http:// or https:// URL (for example https://amk.example/messages)' });

const cidr = () =>
  z
    .string()
    .regex(CIDR_SHAPE_RE, { error: 'must be an IPv4/IPv6 address or CIDR network, for example 10.0.0.0/8 or 2001:db8::/32' })
    .superRefine((value, ctx) => {
      const parsed = parseCidr(value);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: `invalid network: ${parsed}` });
    });

const ipAddress = () =>
  z
    .string()
    .regex(IP_SHAPE_RE, { error: 'must be an IPv4 or IPv6 address (for example 127.0.0.1 or ::1)' })
    .refine((v) => isIP(v) !== 0, { error: 'must be an IPv4 or IPv6 address (for example 127.0.0.1 or ::1)' });

const regexString = () =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const err = regexError(value);
      if (err !== null) ctx.addIssue({ code: 'custom', message: `regular expression does not compile: ${err}` });
    });

const int = (min: number, max: number) => z.number().int().min(min).max(max);

// ---------------------------------------------------------------------------------------------
// Sections

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const logSchema = z
  .strictObject({
    level: z.enum(logLevels).default('info').describe('Log level (pino): fatal, error, warn, info, debug, trace or silent.'),
  })
  .describe('Logging. Logs are JSON lines on stdout (journald); pretty-printed when stdout is a terminal.');

const listenSchema = z
  .strictObject({
    transport: z.enum(['udp', 'tcp']).describe('SIP transport: udp or tcp.'),
    address: ipAddress().default('127.0.0.1').describe('Local IP address to bind (0.0.0.0 or :: needs sip.publicAddress).'),
    port: int(0, 65535).default(5060).describe('Local port; 0 picks a free port (tests).'),
  })
  .describe('One SIP listening socket.');

const timersSchema = z
  .strictObject({
    t1Ms: int(10, 10_000).default(500).describe('RFC 3261 T1 (RTT estimate) in milliseconds.'),
    t2Ms: int(100, 60_000).default(4000).describe('RFC 3261 T2 (maximum retransmit interval for non-INVITE requests and INVITE responses) in milliseconds.'),
    t4Ms: int(100, 60_000).default(5000).describe('RFC 3261 T4 (maximum time a message stays in the network) in milliseconds.'),
    timerBMs: int(100, 600_000)
      .nullable()
      .default(null)
      .describe('RFC 3261 Timer B / Timer F (transaction timeout) in milliseconds; null means 64 × T1.'),
  })
  .transform((t) => ({ ...t, timerBMs: t.timerBMs ?? 64 * t.t1Ms }))
  .describe('SIP transaction timers.');

const sessionTimerSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Offer and honour RFC 4028 session timers on every leg.'),
    expiresS: int(90, 86_400).default(1800).describe('Session-Expires we request, in seconds.'),
    minSeS: int(90, 86_400).default(90).describe('Min-SE we accept, in seconds (RFC 4028 minimum: 90).'),
  })
  .describe('RFC 4028 session timers.');

const sipSchema = z
  .strictObject({
    listen: z
      .array(listenSchema)
      .min(1)
      .prefault([
        { transport: 'udp', address: '127.0.0.1', port: 5060 },
        { transport: 'tcp', address: '127.0.0.1', port: 5060 },
      ])
      .describe('SIP listening sockets (at least one).'),
    publicAddress: z
      .string()
      .regex(/^[A-Za-z0-9.:-]+$/, { error: 'must be a host name or IP address' })
      .refine((v) => isIP(v) !== 0 || HOSTNAME_RE.test(v), { error: 'must be a host name or IP address' })
      .nullable()
      .default(null)
      .describe('Host put in Via and Contact headers; null means the listen address.'),
    userAgent: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[^\r\n\x00-\x1f]+$/, { error: 'must be one line of printable text' })
      .default('amk-bridge')
      .describe('Server / User-Agent header value; the version is appended at runtime.'),
    timers: timersSchema.prefault({}),
    sessionTimer: sessionTimerSchema.prefault({}),
    prack: z
      .enum(['supported', 'required', 'off'])
      .default('supported')
      .describe('Reliable provisional responses (RFC 3262, 100rel/PRACK) on our outgoing legs: supported, required or off.'),
    maxMessageBytes: int(1024, 1_048_576).default(65535).describe('Largest SIP message accepted, in bytes.'),
    drainRetryAfterS: int(0, 3600)
      .default(30)
      .describe('Retry-After (seconds) on the 503 sent to new calls while the bridge drains.'),
  })
  .describe('SIP stack settings.');

const trunkSchema = z
  .strictObject({
    id: idString('trunk').describe('Trunk id, used in routing rules and logs.'),
    networks: z.array(cidr()).min(1).describe('Source addresses allowed to send 112 INVITEs on this trunk (CIDR, IPv4 and IPv6).'),
    probe: sipUri().nullable().default(null).describe('SIP URI to probe with OPTIONS; null: no probing.'),
  })
  .describe('A SIP trunk that delivers 112 calls.');

const callTakersSchema = z
  .strictObject({
    target: sipUri().default('sip:acd@127.0.0.1:5080').describe('Call-taker platform URI (ACD group or desk) that receives the 112 calls.'),
    networks: z
      .array(cidr())
      .min(1)
      .prefault(['127.0.0.0/8'])
      .describe("The call-taker platform's addresses: allowed to send INVITE, INFO and REFER to the bridge (CIDR)."),
    probe: z.boolean().default(true).describe('Probe the target with SIP OPTIONS.'),
  })
  .describe('The call-taker platform.');

const deskSchema = z
  .strictObject({
    id: idString('desk').describe('Desk id (lamp topics, messages, logs).'),
    name: z.string().min(1).max(64).optional().describe('Human-readable desk name; default: the id.'),
    users: z
      .array(z.string().regex(/^[^\s@:;<>]+$/, { error: 'must be a SIP user part (no spaces, @, :, ;)' }))
      .min(1)
      .describe('SIP user parts (Contact/To user of the answering leg) that identify this desk. Quote numbers: "1001".'),
  })
  .transform((d) => ({ id: d.id, name: d.name ?? d.id, users: d.users }))
  .describe('A call-taker desk.');

const digestAuthSchema = z
  .strictObject({
    username: z.string().min(1).max(256).describe('Digest username.'),
    password: z.string().min(1).optional().describe('Digest password (prefer passwordFile).'),
    passwordFile: z
      .string()
      .min(1)
      .optional()
      .describe("File holding the digest password, relative to this config file's directory; a trailing newline is ignored."),
    realm: z.string().min(1).nullable().default(null).describe("Only answer challenges for this realm; null: any realm."),
  })
  .superRefine(
    (a, ctx) => {
      if (!isRecord(a)) return; // runs even when the value is not an object: that error is reported already
      const given = (v: unknown) => v !== undefined && v !== null;
      if (given(a.password) && given(a.passwordFile)) {
        ctx.addIssue({ code: 'custom', path: ['passwordFile'], message: 'password and passwordFile are mutually exclusive; give only one' });
      } else if (!given(a.password) && !given(a.passwordFile)) {
        ctx.addIssue({ code: 'custom', message: 'give password or passwordFile' });
      }
    },
    { when: () => true },
  )
  // password is filled from passwordFile by the loader (./secrets.ts).
  .transform((a) => ({ username: a.username, password: a.password ?? '', passwordFile: a.passwordFile ?? null, realm: a.realm }))
  .describe('Digest credentials for 401/407 challenges. Give exactly one of password or passwordFile.');

const regionSchema = z
  .strictObject({
    id: idString('region').describe('Region id, used by routing and messages.'),
    name: z.string().min(1).max(128).optional().describe('Human-readable region name; default: the id.'),
    code: z
      .string()
      .regex(/^[0-9]{2}$/, { error: 'must be two digits in quotes, for example "01"' })
      .describe('Two-digit region number NN for the *1NN# feature code; unique. Quote it: "01".'),
    targets: z
      .array(sipUri())
      .min(1)
      .describe("The region's AMK SIP URIs, tried in order on transport failure inside one attempt."),
    bufferTargets: z.array(sipUri()).prefault([]).describe('Optional buffer queue URIs.'),
    ringTimerS: z.number().min(0.1).max(300).default(11).describe('Seconds an attempt may ring before it is given up.'),
    attempts: int(1, 10).default(2).describe('Connect attempts before the no-contact message.'),
    auth: digestAuthSchema
      .nullable()
      .default(null)
      .describe('Digest credentials { username, password | passwordFile, realm } for 401/407 challenges; null: none.'),
    outboundProxy: sipUri().nullable().default(null).describe('Outbound proxy SIP URI for calls to this region; null: none.'),
    probe: z.boolean().default(true).describe('Probe the targets with SIP OPTIONS.'),
    bufferAttempts: int(0, 5).default(1).describe('Attempts on the buffer queue after the primary attempts (only when bufferTargets is not empty).'),
    spacingS: z
      .number()
      .min(0)
      .max(300)
      .nullable()
      .default(null)
      .describe('Minimum seconds between the starts of two attempts (an instant 486/503 must not burn both); null: ringTimerS. Retry-After is honoured up to this long.'),
    messageEndpoints: z
      .strictObject({
        primary: httpUrl().describe('URL the no-contact message is POSTed to.'),
        secondary: httpUrl().nullable().default(null).describe('Second URL, used when the primary has not taken the message by the escalation deadline or refused it; null: none.'),
      })
      .prefault({ primary: 'http://127.0.0.1:8090/amk/messages' })
      .describe('Where the electronic "Ingen kontakt til AMK" message goes (HTTP or HTTPS POST, JSON).'),
    escalationS: z.number().min(1).max(3600).default(30).describe('Seconds a message may stay undelivered before the call taker is told to phone the region, an alarm goes out and the secondary endpoint is used.'),
    overflow: z
      .strictObject({
        policy: z
          .enum(['none', 'before-message', 'after-message'])
          .default('none')
          .describe('none: no overflow; before-message: try the overflow regions before sending the message; after-message: send the message, then try them.'),
        regions: z
          .array(
            z
              .strictObject({
                region: idString('region').describe('Region (id) to overflow to.'),
                attempts: int(1, 10).nullable().default(null).describe("Attempts on this region; null: that region's own attempts setting."),
                ringTimerS: z.number().min(0.1).max(300).nullable().default(null).describe("Ring timer per attempt; null: that region's own."),
              })
              .describe('An overflow region, tried in order.'),
          )
          .prefault([])
          .describe('Overflow regions in the order they are tried.'),
      })
      .prefault({})
      .describe("What happens when the region's own attempts are used up."),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.id, spacingS: r.spacingS ?? r.ringTimerS }))
  .describe('A regional medical dispatch centre (AMK).');

const condition = (about: string) =>
  z
    .strictObject({
      equals: z.string().min(1).optional().describe('Exact match.'),
      prefix: z.string().min(1).optional().describe('Starts with.'),
      regex: regexString().optional().describe('JavaScript regular expression (unanchored unless you add ^ and $).'),
    })
    .meta({ minProperties: 1, maxProperties: 1 })
    .superRefine((c, ctx) => {
      const n = [c.equals, c.prefix, c.regex].filter((v) => v !== undefined).length;
      if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of equals, prefix or regex' });
    })
    .describe(`${about}: exactly one of { equals }, { prefix } or { regex }.`);

const headerCondition = z
  .strictObject({
    name: z.string().regex(TOKEN_RE, { error: 'must be a SIP header name' }).describe('Header name (case-insensitive).'),
    equals: z.string().min(1).optional().describe('Exact match of the header value.'),
    prefix: z.string().min(1).optional().describe('The header value starts with this.'),
    regex: regexString().optional().describe('JavaScript regular expression on the header value.'),
  })
  .meta({ minProperties: 2, maxProperties: 2 })
  .superRefine((c, ctx) => {
    const n = [c.equals, c.prefix, c.regex].filter((v) => v !== undefined).length;
    if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give the header name and exactly one of equals, prefix or regex' });
  })
  .describe('A named header of the inbound INVITE: { name, equals | prefix | regex }.');

const ruleSchema = z
  .strictObject({
    region: idString('region').describe('Region (id) the matching calls are routed to.'),
    auto: z.boolean().default(false).describe('Start the conference-in by itself when the call taker answers a matching call.'),
    match: z
      .strictObject({
        requestUriUser: condition('User part of the Request-URI').optional(),
        toUser: condition('User part of the To URI').optional(),
        fromNumber: condition('Caller number (P-Asserted-Identity, else From)').optional(),
        trunk: idString('trunk').optional().describe('Id of the trunk the call came from.'),
        header: headerCondition.optional(),
      })
      .meta({ minProperties: 1 })
      .superRefine((m, ctx) => {
        if (Object.values(m).every((v) => v === undefined)) ctx.addIssue({ code: 'custom', message: 'give at least one condition (use routing.defaultRegion for a catch-all)' });
      })
      .describe('Conditions on the inbound call; all given conditions must hold.'),
  })
  .describe('A routing rule.');

const routingSchema = z
  .strictObject({
    defaultRegion: idString('region').default('hovedstaden').describe('Region (id) for calls that match no rule.'),
    rules: z.array(ruleSchema).prefault([]).describe('Ordered routing rules; the first match wins.'),
  })
  .describe('Which region a 112 call belongs to.');

const probesSchema = z
  .strictObject({
    intervalS: int(1, 86_400).default(30).describe('Seconds between OPTIONS probes of one target.'),
    timeoutMs: int(50, 60_000).default(2000).describe('Milliseconds to wait for a probe response.'),
    upAfter: int(1, 100).default(2).describe('Consecutive answered probes before a target counts as up.'),
    downAfter: int(1, 100).default(2).describe('Consecutive failed probes before a target counts as down.'),
  })
  .describe('SIP OPTIONS health probes of trunks, the call-taker platform and region targets.');

const dtmfCode = (def: string) =>
  z
    .string()
    .regex(/^[*#][0-9*#]{1,7}$/, { error: 'must be 2-8 DTMF characters starting with * or #, in quotes, for example "*0"' })
    .default(def);

const journalSchema = z
  .strictObject({
    path: z.string().min(1).default('/var/lib/amk-bridge/journal.sqlite').describe('SQLite file of the journal and the message outbox (relative paths: from the working directory).'),
    retentionDays: int(1, 3650)
      .default(400)
      .describe('Days calls, requests, attempts and delivered messages are kept; older ones are deleted (a request without an outcome or with an undelivered message never). Statistics reach back this far. Default: a year and a month, for the yearly report.'),
    pruneIntervalMin: z
      .number()
      .min(0.01)
      .max(1440)
      .default(60)
      .describe('Minutes between two prunes of rows older than retentionDays (the first runs shortly after the start).'),
    contextKeyFile: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .describe("Key file (exactly 32 random bytes) sealing a running request's caller data in the journal; created (mode 0600) if missing; null: the journal path + \".key\". Keep it out of backups of the journal."),
  })
  .transform((j) => ({ ...j, contextKeyFile: j.contextKeyFile ?? `${j.path}.key` }))
  .describe('The durable journal: requests, attempts, outcomes and the message outbox.');

const messagesSchema = z
  .strictObject({
    timeoutMs: int(100, 60_000).default(5000).describe('Milliseconds one HTTP POST may take.'),
    backoff: z
      .strictObject({
        initialMs: int(10, 60_000).default(500).describe('First retry delay.'),
        maxMs: int(100, 600_000).default(30_000).describe('Longest retry delay.'),
      })
      .prefault({})
      .describe('Exponential backoff (with jitter) between delivery tries.'),
    caFile: z.string().min(1).nullable().default(null).describe('PEM file of the CA(s) that sign the endpoints\' TLS certificates; null: the system CAs.'),
    authorization: z.string().min(1).nullable().default(null).describe('Authorization header value sent with every POST (for example "Bearer ..."); null: none. Secret: prefer authorizationFile.'),
    authorizationFile: z.string().min(1).nullable().default(null).describe('File holding the Authorization header value (relative to the config file).'),
    probeIntervalS: int(0, 3600).default(30).describe('Seconds between HTTP probes of the message endpoints; 0: no probing.'),
    test: z.boolean().default(false).describe('Mark every message test: true (test and demo installations).'),
  })
  .describe('Delivery of the electronic messages to the regions.');

const lampMode = z.enum(['off', 'on', 'flash']);
const lampColour = z.enum(['red', 'amber', 'green', 'blue', 'white', 'buzzer']);
/** A lamp picture: colour → mode; colours left out are off. */
const appearance = z.partialRecord(lampColour, lampMode).describe('Colours lit in this state and how (off, on, flash); colours left out are off.');
/** Logical colour → device output: a relay channel number or a tower colour name. */
const lampOutputs = z
  .partialRecord(lampColour, z.union([z.number().int().min(1).max(64), z.string().min(1).max(32)]))
  .describe('Which output of the device shows each colour: a relay channel number (1-based) or a tower colour name from the profile.');

const lampsSchema = z
  .strictObject({
    profilesDir: z.string().min(1).default('hardware/profiles').describe('Directory of device profiles (YAML); relative paths: from the working directory.'),
    ports: z
      .array(
        z.strictObject({
          id: idString('lamp port').describe('Port id, used by desks and the system lamp.'),
          path: z.string().min(1).describe('Serial device, e.g. /dev/ttyUSB0 or a udev name such as /dev/amk-lamp-desk1.'),
          profile: idString('profile').describe('Device profile id (the id in a file of profilesDir).'),
        }),
      )
      .prefault([])
      .describe('Serial ports with lamp devices.'),
    desks: z
      .array(
        z.strictObject({
          desk: idString('desk').describe('Desk id (from desks).'),
          port: idString('lamp port').describe('Lamp port id.'),
          outputs: lampOutputs,
        }),
      )
      .prefault([])
      .describe('Desk lamps: which port and outputs show each desk (a desk may have several lamps).'),
    system: z
      .strictObject({ port: idString('lamp port').describe('Lamp port id.'), outputs: lampOutputs })
      .nullable()
      .default(null)
      .describe('The system (fault) lamp, or null.'),
    deskStates: z
      .partialRecord(z.enum(['idle', 'dialing', 'redialing', 'connected', 'no-contact-pending', 'no-contact-delivered', 'escalation', 'overflow-dialing', 'overflow-connected']), appearance)
      .prefault({})
      .describe('Override what a desk lamp shows in a state (defaults: dialing amber flash, redialing amber, connected green, no-contact-pending red flash, no-contact-delivered red, escalation red+amber flash and buzzer, overflow-dialing amber+green flash, overflow-connected green flash).'),
    systemStates: z
      .partialRecord(z.enum(['ok', 'fault', 'alarm']), appearance)
      .prefault({})
      .describe('Override what the system lamp shows (defaults: ok green, fault red, alarm red flash and buzzer).'),
    idleAfterS: z.number().min(0).max(3600).default(10).describe('Seconds a desk lamp keeps showing the end of a request after the call ended before it goes dark (escalation and undelivered messages stay).'),
    outboxBacklogAlarm: int(1, 100_000).default(1).describe('Undelivered messages older than escalation that make the system lamp show a fault.'),
    reopen: z
      .strictObject({
        initialMs: int(50, 60_000).default(500).describe('First wait before reopening, in milliseconds; doubles each time.'),
        maxMs: int(100, 600_000).default(30_000).describe('Longest wait between reopen tries, in milliseconds.'),
      })
      .prefault({})
      .describe('Backoff for reopening a lost serial port.'),
  })
  .describe('Desk alert lamps and the system lamp on serial ports.');

const mqttSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Publish diagnostics and take commands over MQTT.'),
    embedded: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Run an in-process MQTT 3.1.1 broker (aedes); the bridge connects to it. Off in production: use url.'),
        host: ipAddress().default('127.0.0.1').describe('Address the embedded broker listens on (keep it on loopback).'),
        port: int(0, 65535).default(1883).describe('Port of the embedded broker (0: any free port, tests).'),
      })
      .prefault({})
      .describe('The embedded broker of the default installation.'),
    url: z
      .string()
      .regex(/^mqtts?:\/\/[^\s/]+(:[0-9]+)?\/?$/, { error: 'must be mqtt://host:port or mqtts://host:port' })
      .nullable()
      .default(null)
      .describe("The site's broker, e.g. mqtts://broker.example:8883 (used when embedded.enabled is false)."),
    username: z.string().min(1).nullable().default(null).describe('Broker username.'),
    password: z.string().min(1).nullable().default(null).describe('Broker password. Secret: prefer passwordFile.'),
    passwordFile: z.string().min(1).nullable().default(null).describe('File holding the broker password (relative to the config file).'),
    caFile: z.string().min(1).nullable().default(null).describe("PEM of the CA that signs the broker's certificate (mqtts); null: the system CAs."),
    baseTopic: z.string().regex(/^[^#+\s]+$/, { error: 'must be a topic without wildcards or spaces' }).nullable().default(null).describe('Base topic; null: amk-bridge/<node>.'),
    healthIntervalS: int(1, 3600).default(30).describe('Seconds between bridge/health publications.'),
    pseudonymise: z.boolean().default(true).describe('Replace caller numbers in everything published by a keyed pseudonym.'),
    commandPrefix: z.string().regex(/^[^#+\s]*$/, { error: 'must be a topic part without wildcards' }).default('bridge/request').describe('Topic (under the base topic) where commands are taken; restrict it with the broker ACL.'),
    queueLimit: int(10, 1_000_000).default(1000).describe('Diagnostics kept while the broker is away; the oldest are dropped first (and counted).'),
  })
  .describe('MQTT diagnostics and commands for technicians (zigbee2mqtt conventions).');

const metricsSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve Prometheus metrics over HTTP.'),
    host: ipAddress().default('127.0.0.1').describe('Address of the metrics listener (keep it on loopback).'),
    port: int(0, 65535).default(9464).describe('Port of the metrics listener; the path is /metrics.'),
  })
  .describe('Prometheus /metrics (opt-in).');

const recontactSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Flag callers who call again within the window (Ukom recommendation).'),
    windowH: z.number().min(0.1).max(24 * 30).default(24).describe('Hours a caller number is remembered (as a keyed hash only).'),
    path: z.string().min(1).default('/var/lib/amk-bridge/recontact.sqlite').describe('SQLite file of the hashed sightings (relative paths: from the working directory).'),
    keyFile: z.string().min(1).default('/var/lib/amk-bridge/recontact.key').describe('HMAC key file (32+ random bytes); created with a fresh key if missing. Keep it out of backups of the journal.'),
    previousKeyFile: z.string().min(1).nullable().default(null).describe('The key before a rotation: still matched for one window, then remove it.'),
    defaultCountryCode: z.string().regex(/^[0-9]{1,3}$/, { error: 'must be a country calling code without +, e.g. "45"' }).default('45').describe('Country code for national numbers when normalising to E.164. Quote it: "45".'),
  })
  .describe('Re-contact flagging: the same caller again within a window.');

const conferenceSchema = z
  .strictObject({
    trigger: z
      .strictObject({
        info: z.boolean().default(true).describe('Accept the feature code as SIP INFO digits (application/dtmf-relay, application/dtmf) from the call taker.'),
        rtp: z.boolean().default(true).describe("Accept the feature code as RFC 4733 telephone-events in the call taker's RTP."),
      })
      .prefault({})
      .describe('How the call taker can start a conference-in.'),
    featureCode: z
      .string()
      .regex(/^[*#][0-9*#]{1,7}$/, { error: 'must be 2-8 DTMF characters starting with * or #, in quotes, for example "*1"' })
      .default('*1')
      .describe('DTMF feature code that conferences in the region; *1NN# names region NN. Quote it: "*1".'),
    abortCode: dtmfCode('*0').describe('DTMF code that aborts the running conference-in (before a message is committed).'),
    retryCode: dtmfCode('*9').describe('DTMF code that starts the next attempt now instead of waiting out the spacing.'),
    interDigitMs: int(100, 10_000)
      .default(2000)
      .describe('Milliseconds to wait for the next feature-code digit; after the code alone, the home region is used when it runs out.'),
  })
  .describe('Conference-in of the region.');

const mediaSchema = z
  .strictObject({
    address: ipAddress().default('127.0.0.1').describe('Local IP address the RTP sockets bind to.'),
    publicAddress: ipAddress()
      .nullable()
      .default(null)
      .describe('Address written into our SDP (c=) when peers must reach RTP through another address; null: media.address.'),
    portMin: int(1024, 65534).default(20000).describe('First RTP port of the range (even ports for RTP, RTCP on port + 1).'),
    portMax: int(1026, 65535).default(30000).describe('End of the RTP port range (exclusive). A call uses one pair per leg: 2 to 3 pairs.'),
    codecs: z
      .array(z.enum(['PCMU', 'PCMA']))
      .min(1)
      .prefault(['PCMU', 'PCMA'])
      .describe('G.711 laws we accept and offer, in our order of preference (answers follow the offerer\'s order).'),
    latchNetworks: z
      .array(cidr())
      .prefault([])
      .describe('Networks RTP may also come from besides the address in the SDP (NAT, SBC pools); anything else is dropped.'),
    jitterDelayMs: int(0, 200).default(40).describe('Playout delay of the jitter buffer per input, in milliseconds.'),
    rtpTimeoutS: int(0, 3600).default(30).describe('Report a leg whose RTP stopped for this many seconds; 0: never.'),
  })
  .describe('Anchored RTP: every leg of a call sends its audio to the bridge, which mixes it.');

// ---------------------------------------------------------------------------------------------
// Root

const rootShape = z.strictObject({
  node: idString('node').default('psap-1').describe('Node id of this bridge; appears in logs, messages and MQTT topics.'),
  log: logSchema.prefault({}),
  sip: sipSchema.prefault({}),
  trunks: z
    .array(trunkSchema)
    .min(1)
    .prefault([{ id: 'trunk-a', networks: ['127.0.0.0/8'] }])
    .describe('SIP trunks that deliver 112 calls; INVITEs from other sources are refused.'),
  callTakers: callTakersSchema.prefault({}),
  desks: z
    .array(deskSchema)
    .prefault([{ id: 'desk-1', name: 'Desk 1', users: ['1001'] }])
    .describe('Call-taker desks, recognised from the answering leg.'),
  regions: z
    .array(regionSchema)
    .min(1)
    .prefault([{ id: 'hovedstaden', name: 'Region Hovedstaden', code: '01', targets: ['sip:amk@127.0.0.1:5090'] }])
    .describe('Regional dispatch centres (AMK).'),
  routing: routingSchema.prefault({}),
  probes: probesSchema.prefault({}),
  conference: conferenceSchema.prefault({}),
  media: mediaSchema.prefault({}),
  journal: journalSchema.prefault({}),
  messages: messagesSchema.prefault({}),
  lamps: lampsSchema.prefault({}),
  mqtt: mqttSchema.prefault({}),
  metrics: metricsSchema.prefault({}),
  recontact: recontactSchema.prefault({}),
});

type Path = (string | number)[];
type Issue = { path: Path; message: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function showPath(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Reports the later duplicates of `key` in a list of objects. */
function unique(items: unknown[], base: Path, key: string, what: string, out: Issue[]): void {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const v = isRecord(item) ? str(item[key]) : undefined;
    if (v === undefined) return;
    const j = first.get(v);
    if (j === undefined) first.set(v, i);
    else out.push({ path: [...base, i, key], message: `duplicate ${what} "${v}" (also ${showPath([...base, j, key])})` });
  });
}

/**
 * Cross-field rules. Written against `unknown` because it also runs when other keys are already
 * invalid (so that one run reports everything).
 */
export function crossFieldIssues(value: unknown): Issue[] {
  const out: Issue[] = [];
  if (!isRecord(value)) return out;

  const regions = list(value.regions);
  const trunks = list(value.trunks);
  const desks = list(value.desks);
  const regionIds = new Set(regions.map((r) => (isRecord(r) ? str(r.id) : undefined)).filter((v) => v !== undefined));
  const trunkIds = new Set(trunks.map((r) => (isRecord(r) ? str(r.id) : undefined)).filter((v) => v !== undefined));
  const regionList = [...regionIds].map((id) => `"${id}"`).join(', ') || 'none';

  unique(regions, ['regions'], 'id', 'region id', out);
  unique(regions, ['regions'], 'code', 'region code', out);
  unique(trunks, ['trunks'], 'id', 'trunk id', out);
  unique(desks, ['desks'], 'id', 'desk id', out);

  const userOwner = new Map<string, string>();
  desks.forEach((desk, i) => {
    if (!isRecord(desk)) return;
    list(desk.users).forEach((u, j) => {
      if (typeof u !== 'string') return;
      const owner = userOwner.get(u);
      if (owner !== undefined) out.push({ path: ['desks', i, 'users', j], message: `user "${u}" is already mapped (${owner})` });
      else userOwner.set(u, showPath(['desks', i, 'users', j]));
    });
  });

  regions.forEach((r, i) => {
    if (!isRecord(r) || !isRecord(r.overflow)) return;
    const self = str(r.id);
    const policy = str(r.overflow.policy);
    const over = list(r.overflow.regions);
    over.forEach((o, j) => {
      const id = isRecord(o) ? str(o.region) : undefined;
      if (id === undefined) return;
      if (!regionIds.has(id)) out.push({ path: ['regions', i, 'overflow', 'regions', j, 'region'], message: `region "${id}" is not defined in regions (defined: ${regionList})` });
      else if (id === self) out.push({ path: ['regions', i, 'overflow', 'regions', j, 'region'], message: 'a region cannot overflow to itself' });
    });
    if (policy !== undefined && policy !== 'none' && over.length === 0) out.push({ path: ['regions', i, 'overflow', 'regions'], message: `policy "${policy}" needs at least one overflow region` });
  });

  if (isRecord(value.lamps)) {
    const lamps = value.lamps;
    const portIds = new Set(list(lamps.ports).map((p) => (isRecord(p) ? str(p.id) : undefined)).filter((v) => v !== undefined));
    const deskIds = new Set(desks.map((d) => (isRecord(d) ? str(d.id) : undefined)).filter((v) => v !== undefined));
    unique(list(lamps.ports), ['lamps', 'ports'], 'id', 'lamp port id', out);
    const checkPort = (path: Path, id: string | undefined) => {
      if (id !== undefined && !portIds.has(id)) out.push({ path, message: `lamp port "${id}" is not defined in lamps.ports (defined: ${[...portIds].map((x) => `"${x}"`).join(', ') || 'none'})` });
    };
    list(lamps.desks).forEach((d, i) => {
      if (!isRecord(d)) return;
      checkPort(['lamps', 'desks', i, 'port'], str(d.port));
      const desk = str(d.desk);
      if (desk !== undefined && !deskIds.has(desk)) out.push({ path: ['lamps', 'desks', i, 'desk'], message: `desk "${desk}" is not defined in desks` });
    });
    if (isRecord(lamps.system)) checkPort(['lamps', 'system', 'port'], str(lamps.system.port));
  }

  if (isRecord(value.media)) {
    const lo = num(value.media.portMin);
    const hi = num(value.media.portMax);
    // Three legs per call at most: a range of fewer than 4 pairs cannot carry one conference.
    if (lo !== undefined && hi !== undefined && hi - lo < 8) out.push({ path: ['media', 'portMax'], message: `must be at least 8 above media.portMin (${lo}): each leg takes an RTP/RTCP pair` });
  }

  if (isRecord(value.routing)) {
    const routing = value.routing;
    const def = str(routing.defaultRegion);
    if (def !== undefined && !regionIds.has(def)) {
      out.push({ path: ['routing', 'defaultRegion'], message: `region "${def}" is not defined in regions (defined: ${regionList})` });
    }
    list(routing.rules).forEach((rule, i) => {
      if (!isRecord(rule)) return;
      const region = str(rule.region);
      if (region !== undefined && !regionIds.has(region)) {
        out.push({ path: ['routing', 'rules', i, 'region'], message: `region "${region}" is not defined in regions (defined: ${regionList})` });
      }
      const trunk = isRecord(rule.match) ? str(rule.match.trunk) : undefined;
      if (trunk !== undefined && !trunkIds.has(trunk)) {
        const known = [...trunkIds].map((id) => `"${id}"`).join(', ') || 'none';
        out.push({ path: ['routing', 'rules', i, 'match', 'trunk'], message: `trunk "${trunk}" is not defined in trunks (defined: ${known})` });
      }
    });
  }

  if (isRecord(value.sip)) {
    const sip = value.sip;
    const seen = new Map<string, number>();
    let wildcard = false;
    list(sip.listen).forEach((l, i) => {
      if (!isRecord(l)) return;
      const address = str(l.address);
      if (address === '0.0.0.0' || address === '::') wildcard = true;
      const port = num(l.port);
      if (port === undefined || port === 0 || address === undefined) return;
      const key = `${str(l.transport)} ${address} ${port}`;
      const j = seen.get(key);
      if (j !== undefined) out.push({ path: ['sip', 'listen', i], message: `same transport, address and port as ${showPath(['sip', 'listen', j])}` });
      else seen.set(key, i);
    });
    if (wildcard && sip.publicAddress == null) {
      out.push({ path: ['sip', 'publicAddress'], message: 'required when a listen address is 0.0.0.0 or :: (Via/Contact need a reachable host)' });
    }
    if (isRecord(sip.timers)) {
      const t1 = num(sip.timers.t1Ms);
      const t2 = num(sip.timers.t2Ms);
      if (t1 !== undefined && t2 !== undefined && t2 < t1) out.push({ path: ['sip', 'timers', 't2Ms'], message: `must be >= t1Ms (${t1})` });
    }
    if (isRecord(sip.sessionTimer)) {
      const exp = num(sip.sessionTimer.expiresS);
      const min = num(sip.sessionTimer.minSeS);
      if (exp !== undefined && min !== undefined && min > exp) out.push({ path: ['sip', 'sessionTimer', 'minSeS'], message: `must be <= expiresS (${exp})` });
    }
  }

  if (isRecord(value.probes)) {
    const interval = num(value.probes.intervalS);
    const timeout = num(value.probes.timeoutMs);
    if (interval !== undefined && timeout !== undefined && timeout >= interval * 1000) {
      out.push({ path: ['probes', 'timeoutMs'], message: `must be shorter than probes.intervalS (${interval} s)` });
    }
  }
  return out;
}

/** The whole configuration file. */
export const configSchema = rootShape
  .superRefine(
    (value, ctx) => {
      for (const issue of crossFieldIssues(value)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    },
    { when: () => true },
  )
  .meta({
    title: 'amk-bridge configuration',
    description: 'amk-bridge configuration (YAML). Validate it with `amk-bridge check-config FILE`.',
  });

/** The validated configuration with every default applied. */
export type Config = z.output<typeof configSchema>;
/** What may be written in the file (defaults optional). */
export type ConfigInput = z.input<typeof configSchema>;

export type LogLevel = Config['log']['level'];
export type ListenConfig = Config['sip']['listen'][number];
export type SipConfig = Config['sip'];
export type TrunkConfig = Config['trunks'][number];
export type CallTakersConfig = Config['callTakers'];
export type DeskConfig = Config['desks'][number];
export type RegionConfig = Config['regions'][number];
export type RegionInput = ConfigInput extends { regions?: (infer R)[] | undefined } ? R : never;
export type DigestAuthConfig = NonNullable<RegionConfig['auth']>;
export type RoutingConfig = Config['routing'];
export type RoutingRule = RoutingConfig['rules'][number];
export type MatchCondition = NonNullable<RoutingRule['match']['requestUriUser']>;
export type HeaderCondition = NonNullable<RoutingRule['match']['header']>;
export type ProbesConfig = Config['probes'];
export type ConferenceConfig = Config['conference'];
