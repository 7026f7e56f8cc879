// Headers that travel from the citizen's leg to the call-taker and region legs: the caller's
// asserted identity and privacy, location by reference or value, emergency call identifiers
// and additional data (RFC 7852), history and resource priority.
import type { Headers } from './message.js';

export const PASS_THROUGH = [
  'P-Asserted-Identity', 'Privacy', 'Geolocation', 'Geolocation-Routing', 'Call-Info',
  'History-Info', 'Resource-Priority', 'Accept-Resource-Priority', 'Subject', 'Priority',
];

/** Copy the pass-through headers (every line, in order) as [name, value] pairs. */
export function passThrough(from: Headers, names: readonly string[] = PASS_THROUGH): [string, string][] {
  const out: [string, string][] = [];
  const wanted = new Set(names.map((n) => n.toLowerCase()));
  for (const f of from.fields) if (wanted.has(f.key)) out.push([f.name, f.value]);
  return out;
}
