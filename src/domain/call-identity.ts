// Who and where the citizen is, and which incident this is, from the facts of the inbound 112
// call: what the message and the conference-in INVITE say about it. Pure.
import type { CallFacts } from '../core/events.js';

export interface CallIdentity {
  /** RFC 7852 URNs: taken from the inbound Call-Info when present, else created once per call. */
  incidentId: string;
  emergencyCallId: string;
  callerNumber: string | null;
  callbackUri: string | null;
  location: { pidfLo: string | null; reference: string | null } | null;
}

const URI_IN_BRACKETS = /<([^>]+)>/;

/** The URI of the Call-Info entry with this purpose, if any. */
export function callInfoUri(values: string[], purpose: string): string | null {
  const re = new RegExp(`purpose\\s*=\\s*"?${purpose}"?(?:\\s*[;,]|\\s*$)`, 'i');
  for (const v of values) {
    // A header line may hold several comma-separated entries.
    for (const entry of v.split(/,(?=\s*<)/)) {
      if (re.test(entry)) return URI_IN_BRACKETS.exec(entry)?.[1] ?? null;
    }
  }
  return null;
}

function newUrn(kind: 'incidentid' | 'callid', node: string, hexId: string): string {
  return `urn:emergency:uid:${kind}:${hexId}:${node}`;
}

/**
 * `newHex` gives a fresh random hex string (the caller's randomness; this module has none).
 */
export function callIdentity(f: CallFacts, node: string, newHex: () => string): CallIdentity {
  const info = f.header('call-info');
  const number = f.paiNumber ?? f.fromNumber;
  const anonymous = number === null || /anonymous|unavailable|restricted/i.test(number);
  const pai = f.header('p-asserted-identity')[0];
  const from = f.header('from')[0];
  const uri = URI_IN_BRACKETS.exec(pai ?? from ?? '')?.[1] ?? null;
  const geo = f.header('geolocation')[0];
  const reference = geo ? (URI_IN_BRACKETS.exec(geo)?.[1] ?? null) : null;
  return {
    incidentId: callInfoUri(info, 'emergency-IncidentId') ?? newUrn('incidentid', node, newHex()),
    emergencyCallId: callInfoUri(info, 'emergency-CallId') ?? newUrn('callid', node, newHex()),
    callerNumber: anonymous ? null : number,
    callbackUri: anonymous || !uri || /anonymous/i.test(uri) ? null : uri,
    location: f.pidfLo || reference ? { pidfLo: f.pidfLo, reference } : null,
  };
}
