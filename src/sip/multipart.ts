// multipart/mixed bodies (RFC 2046 5.1): the 112 INVITE carries SDP plus a PIDF-LO part that
// the Geolocation header points at by Content-ID (RFC 6442). Parts are kept as raw bytes.

export interface BodyPart {
  headers: [string, string][];
  body: Buffer;
}

export function contentTypeOf(part: BodyPart): string {
  const ct = part.headers.find(([n]) => n.toLowerCase() === 'content-type');
  return (ct?.[1] ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
}

export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^\s*multipart\//i.test(contentType)) return null;
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2] ?? null) : null;
}

/** Split a multipart body into its parts; null when it is not well-formed. */
export function parseMultipart(body: Buffer, contentType: string | undefined): BodyPart[] | null {
  const boundary = boundaryOf(contentType);
  if (!boundary) return null;
  const delim = Buffer.from(`--${boundary}`);
  const parts: BodyPart[] = [];
  let pos = body.indexOf(delim);
  if (pos < 0) return null;
  for (;;) {
    let start = pos + delim.length;
    if (body[start] === 45 && body[start + 1] === 45) break; // closing delimiter "--"
    // skip transport padding and the CRLF after the delimiter
    while (body[start] === 32 || body[start] === 9) start++;
    if (body[start] === 13) start++;
    if (body[start] === 10) start++;
    const next = body.indexOf(delim, start);
    if (next < 0) return null;
    let end = next;
    if (body[end - 1] === 10) end--;
    if (body[end - 1] === 13) end--;
    const raw = body.subarray(start, end);
    let sep = raw.indexOf('\r\n\r\n');
    let sepLen = 4;
    if (sep < 0) {
      sep = raw.indexOf('\n\n');
      sepLen = 2;
    }
    const headerText = sep < 0 ? '' : raw.subarray(0, sep).toString('utf8');
    const headers: [string, string][] = [];
    for (const line of headerText.split(/\r?\n/)) {
      const c = line.indexOf(':');
      if (c > 0) headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
    }
    parts.push({ headers, body: sep < 0 ? raw : raw.subarray(sep + sepLen) });
    pos = next;
  }
  return parts;
}

/** Build a multipart/mixed body; returns the body and its Content-Type. */
export function buildMultipart(parts: BodyPart[], boundary = 'amk-' + Math.random().toString(36).slice(2, 12)): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    const head = p.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('');
    chunks.push(Buffer.from(`--${boundary}\r\n${head}\r\n`), p.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/mixed;boundary=${boundary}` };
}

/** The SDP of a body that is either SDP or multipart containing SDP. */
export function sdpOf(body: Buffer, contentType: string | undefined): Buffer | null {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/sdp') return body;
  const parts = parseMultipart(body, contentType);
  const sdp = parts?.find((p) => contentTypeOf(p) === 'application/sdp');
  return sdp ? sdp.body : null;
}

/** Every part that is not SDP (location, additional data), for re-use on another leg. */
export function nonSdpParts(body: Buffer, contentType: string | undefined): BodyPart[] {
  const parts = parseMultipart(body, contentType);
  return parts ? parts.filter((p) => contentTypeOf(p) !== 'application/sdp') : [];
}
