// The lamp layer's contract: device profiles (data files in hardware/profiles/), what a lamp is
// asked to show, and the serial port driver as the rest of the bridge sees it.

/** How one output of a lamp device is driven. */
export type LampMode = 'off' | 'on' | 'flash';

/**
 * An output of a device: a relay channel number (1-based, as printed on the board) or a tower
 * colour name from the profile's `colours` (e.g. "red", "amber", "green", "buzzer").
 */
export type OutputKey = number | string;

/** A device profile, validated from a YAML file in hardware/profiles/. */
export interface LampProfile {
  id: string;
  name: string;
  /** The vendor manual (title, section) the bytes come from. */
  manual: string;
  serial: { baudRate: number; dataBits: 5 | 6 | 7 | 8; parity: 'none' | 'even' | 'odd'; stopBits: 1 | 2 };
  /**
   * relay: mechanical relays, one command per channel; never flashed (contact wear), so flash
   * is shown as on. tower: a signal tower/light whose whole state is one command per change.
   */
  kind: 'relay' | 'tower';
  /** relay: number of channels the profile supports at most. */
  channels?: number;
  /** tower: colour (or buzzer) names, in the order the command template expects them. */
  colours?: string[];
  /** The device flashes by itself (only such devices ever show flash). */
  selfFlash: boolean;
  /** Byte templates (see src/lamps/template.ts for the syntax). */
  commands: {
    /** relay: switch channel {ch} on / off. */
    on?: string;
    off?: string;
    /** tower: set every colour at once; `{<colour>}` placeholders take `modes[mode]`. */
    set?: string;
    modes?: Partial<Record<LampMode, string>>;
    /** Sent once after the port opens (e.g. to select a mode), optional. */
    init?: string;
  };
  /** Devices that acknowledge: wait for ack before the next command; retry on nak or timeout. */
  ack: null | { ack: string; nak: string; timeoutMs: number; retries: number };
}

export interface LampPortStatus {
  id: string;
  path: string;
  open: boolean;
  since: number;
  lastError: string | null;
  /** Commands waiting to be written. */
  queued: number;
  /** Commands given up after the profile's retries (NAK/timeout). */
  failedCommands: number;
}
