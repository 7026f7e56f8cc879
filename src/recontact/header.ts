// The re-contact header on the conference-in INVITE. Pure.
//
//   X-AMK-Recontact: count=2;last=2026-11-25T10:00:00.000Z
//
// Our own extension header (not registered with IANA): `count` is how many earlier contacts
// from the same caller number fall within the re-contact window, `last` the time of the latest
// of them (UTC, ISO 8601). SIP elements that do not know the header pass it on or ignore it
// (RFC 3261 §8.2.2: unknown headers are ignored), so it is safe to send to any region. It is
// only added when the call is a re-contact; its absence means "no earlier contact" (or a
// withheld number, which never matches).

export const RECONTACT_HEADER = 'X-AMK-Recontact';

export function recontactHeader(r: { count: number; lastAt: number }): [string, string] {
  return [RECONTACT_HEADER, `count=${r.count};last=${new Date(r.lastAt).toISOString()}`];
}
