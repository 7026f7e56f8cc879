// The media layer's contract: what the SIP adapter asks of the RTP engine, and what the engine
// reports back. The engine runs in a worker thread; this interface is what the main thread sees.

/** G.711 law used on one leg. */
export type Codec = 'PCMU' | 'PCMA';

/** Private tones, heard by the call taker only (mixed into that endpoint's output). */
export type ToneName = 'ringing' | 'busy' | 'connected' | 'message-sent' | 'message-failed' | 'refused';

/** How one RTP endpoint (one SIP leg) talks to its peer, from the negotiated SDP. */
export interface EndpointMedia {
  /** Where we send RTP (from the peer's SDP c=/m=); null while unknown (late offer) or on hold. */
  remote: { address: string; port: number; rtcpPort: number } | null;
  codec: Codec;
  /** RTP payload type numbers as negotiated. */
  payloadType: number;
  /** telephone-event payload type (RFC 4733), or null when not negotiated. */
  telephoneEvent: number | null;
  /** Packetisation the peer asked for (10, 20 or 30 ms); we send this size. */
  ptimeMs: number;
  /** sendrecv, sendonly, recvonly or inactive, from our point of view. */
  direction: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
  /**
   * Extra source networks (CIDR) RTP may come from besides the SDP address (NAT, SBC pools).
   * Symmetric RTP: we latch to the first allowed source and send there.
   */
  latchNetworks: string[];
}

export interface EndpointInfo {
  id: string;
  /** Local address and RTP port (RTCP is port + 1). */
  address: string;
  port: number;
}

/** Who hears whom: each member hears the sum of the others it lists (default: all others). */
export interface ConferenceMember {
  endpointId: string;
  /** Members whose audio this one does NOT hear (e.g. nothing, normally). */
  muted?: boolean;
}

export interface EndpointStats {
  id: string;
  packetsIn: number;
  packetsOut: number;
  /** Packets from a source that is neither the SDP address nor an allowed network. */
  rejectedSource: number;
  lost: number;
  lateOrDuplicate: number;
  latchedTo: string | null;
}

export type MediaEvent =
  | { type: 'dtmf'; endpointId: string; digit: string; durationMs: number }
  | { type: 'rejected-source'; endpointId: string; from: string }
  | { type: 'rtp-timeout'; endpointId: string; silentForMs: number };
