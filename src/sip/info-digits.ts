// DTMF digits carried in SIP INFO: application/dtmf-relay (Signal=5) and application/dtmf (5).

const DIGIT = /^[0-9*#A-D]$/i;

/** The digit an INFO body carries, or null when the body is not a DTMF INFO we understand. */
export function infoDigit(contentType: string | undefined, body: Buffer): string | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const text = body.toString('utf8').trim();
  if (type === 'application/dtmf-relay') {
    const m = /^\s*signal\s*=\s*(\S)/im.exec(text);
    return m && DIGIT.test(m[1]!) ? m[1]!.toUpperCase() : null;
  }
  if (type === 'application/dtmf') {
    if (DIGIT.test(text)) return text.toUpperCase();
    // RFC 2833 event codes 10 and 11 as sometimes sent in the body.
    if (text === '10') return '*';
    if (text === '11') return '#';
    return /^\d$/.test(text) ? text : null;
  }
  return null;
}

export function isDtmfInfo(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/dtmf-relay' || type === 'application/dtmf';
}
