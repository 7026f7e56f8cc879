// Feature-code digits from the call taker: `*1` conferences in the home region, `*1NN#` region
// NN, and the abort (`*0`) and retry (`*9`) keys. Pure state machine: the caller feeds digits,
// runs the inter-digit timer, and calls `timeout()` when it expires (a bare `*1` followed by a
// pause is complete).

export type FeatureResult =
  | { kind: 'none' }
  | { kind: 'pending' }
  | { kind: 'conference'; regionCode: string | null }
  | { kind: 'abort' }
  | { kind: 'retry' }
  | { kind: 'invalid'; digits: string };

export class FeatureCodeCollector {
  private digits = '';

  constructor(
    private readonly code: string,
    private readonly keys: { abort?: string; retry?: string } = {},
  ) {}

  push(digit: string): FeatureResult {
    this.digits += digit;
    const d = this.digits;
    const c = this.code;
    const { abort, retry } = this.keys;
    if (d === abort || d === retry) {
      this.digits = '';
      return { kind: d === abort ? 'abort' : 'retry' };
    }
    if (c.startsWith(d) || abort?.startsWith(d) || retry?.startsWith(d)) return { kind: 'pending' };
    if (d.startsWith(c)) {
      const rest = d.slice(c.length);
      if (/^[0-9]{1,2}$/.test(rest)) return { kind: 'pending' };
      if (/^[0-9]{2}#$/.test(rest) || rest === '#') {
        this.digits = '';
        return { kind: 'conference', regionCode: rest === '#' ? null : rest.slice(0, 2) };
      }
    }
    this.digits = '';
    // A digit that cannot start the code is ordinary talk-time DTMF, not a failed code.
    return d.length > 1 ? { kind: 'invalid', digits: d } : { kind: 'none' };
  }

  timeout(): FeatureResult {
    const d = this.digits;
    this.digits = '';
    if (d === this.code) return { kind: 'conference', regionCode: null };
    return d ? { kind: 'invalid', digits: d } : { kind: 'none' };
  }

  get collecting(): boolean {
    return this.digits.length > 0;
  }
}
