// The media adapter: owns the engine, opens CallMedia per call, turns engine events into bus
// events (feature-code digits from the call taker's RTP), and plays the call taker's tones.
import { MediaEngine, PortsExhaustedError } from './engine.js';
import { CallMedia } from './call-media.js';
import { SpareEndpoints } from './spare-endpoints.js';
import type { Codec, MediaEvent, ToneName } from './types.js';
import type { EventBus } from '../core/events.js';
import { CALLTAKER, MediaUnavailableError, type CallMediaPort, type MediaLegName, type MediaPort } from '../core/media-port.js';

export interface MediaSettings {
  address: string;
  publicAddress: string | null;
  portMin: number;
  portMax: number;
  codecs: Codec[];
  latchNetworks: string[];
  jitterDelayMs: number;
  rtpTimeoutS: number;
}

interface Log {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  debug(o: object, m?: string): void;
}

export class MediaAdapter implements MediaPort {
  private readonly calls = new Map<string, CallMedia>();
  private readonly owners = new Map<string, { callId: string; leg: MediaLegName }>();
  private readonly spares: SpareEndpoints;

  private constructor(
    readonly engine: MediaEngine,
    private settings: MediaSettings,
    private readonly bus: EventBus,
    private readonly log: Log,
  ) {
    // A call's SDP answer takes a spare endpoint instead of waiting for the worker to bind one.
    // 16 cover a burst of 8 new calls (citizen + call taker legs each), or 80 ms of 100 calls/s
    // while the worker is busy or briefly not scheduled.
    this.spares = new SpareEndpoints(engine, 16);
    engine.on('event', (e: MediaEvent) => this.onEvent(e));
    engine.on('error', (err: Error) => log.warn({ err: err.message }, 'media engine error'));
  }

  static async start(settings: MediaSettings, bus: EventBus, log: Log): Promise<MediaAdapter> {
    const engine = await MediaEngine.start({
      address: settings.address, portMin: settings.portMin, portMax: settings.portMax,
      jitterDelayMs: settings.jitterDelayMs, rtpTimeoutMs: settings.rtpTimeoutS * 1000,
    });
    return new MediaAdapter(engine, settings, bus, log);
  }

  /** New settings for new calls (codecs, latch networks); the port range needs a restart. */
  reconfigure(settings: MediaSettings): void {
    this.settings = { ...settings, address: this.settings.address, portMin: this.settings.portMin, portMax: this.settings.portMax };
  }

  open(callId: string): CallMediaPort {
    const free = (this.settings.portMax - this.settings.portMin) / 2 - this.engine.activeEndpoints + this.spares.count;
    if (free < 3) throw new MediaUnavailableError('RTP port range exhausted');
    const cm = new CallMedia(this.engine, callId, {
      sdpAddress: this.settings.publicAddress ?? this.settings.address,
      codecs: this.settings.codecs,
      latchNetworks: this.settings.latchNetworks,
    }, {
      endpointAdded: (id, leg) => this.owners.set(id, { callId, leg }),
      endpointRemoved: (id) => this.owners.delete(id),
    }, () => this.spares.take());
    this.calls.set(callId, cm);
    const close = cm.close.bind(cm);
    cm.close = () => {
      close();
      this.calls.delete(callId);
    };
    return cm;
  }

  tone(callId: string, tone: ToneName | null): void {
    const id = this.calls.get(callId)?.endpointId(CALLTAKER);
    if (id) this.engine.playTone(id, tone);
  }

  private onEvent(e: MediaEvent): void {
    const owner = this.owners.get(e.endpointId);
    if (e.type === 'dtmf') {
      // Only the call taker's digits drive the bridge; they are never mixed to anyone.
      if (owner?.leg === CALLTAKER) this.bus.emit('call.digit', { callId: owner.callId, digit: e.digit, via: 'rtp' });
    } else if (e.type === 'rejected-source') {
      this.log.warn({ callId: owner?.callId, leg: owner?.leg, from: e.from }, 'RTP from an address not in the SDP: dropped');
    } else if (e.type === 'rtp-timeout') {
      this.log.warn({ callId: owner?.callId, leg: owner?.leg, silentForMs: e.silentForMs }, 'no RTP from peer');
    }
  }

  async stop(): Promise<void> {
    this.spares.stop();
    for (const cm of [...this.calls.values()]) cm.close();
    await this.engine.stop();
  }
}

export { PortsExhaustedError };
