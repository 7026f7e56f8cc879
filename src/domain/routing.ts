// Which region a 112 call belongs to: ordered rules, first match wins, else the default.
// Pure: takes the facts of the call and the rules, returns a region id.
import type { CallFacts } from '../core/events.js';

export interface Condition {
  equals?: string;
  prefix?: string;
  regex?: string;
}

export interface RoutingRule {
  region: string;
  /** Conference the region in by itself when the call taker answers. */
  auto?: boolean;
  match: {
    requestUriUser?: Condition;
    toUser?: Condition;
    fromNumber?: Condition;
    trunk?: string;
    header?: Condition & { name: string };
  };
}

export interface Routing {
  defaultRegion: string;
  rules: RoutingRule[];
}

/** A routing table with its regular expressions compiled once. */
export class Router {
  private readonly compiled: { region: string; auto: boolean; test: (f: CallFacts) => boolean }[];

  constructor(private readonly routing: Routing) {
    this.compiled = routing.rules.map((r) => ({ region: r.region, auto: r.auto ?? false, test: compileRule(r) }));
  }

  /** The home region of a call, the index of the rule that chose it (-1: default), and whether that rule conferences in by itself. */
  route(facts: CallFacts): { region: string; rule: number; auto: boolean } {
    for (let i = 0; i < this.compiled.length; i++) {
      const c = this.compiled[i]!;
      if (c.test(facts)) return { region: c.region, rule: i, auto: c.auto };
    }
    return { region: this.routing.defaultRegion, rule: -1, auto: false };
  }
}

function compileCondition(c: Condition): (v: string | null) => boolean {
  if (c.equals !== undefined) {
    const want = c.equals;
    return (v) => v === want;
  }
  if (c.prefix !== undefined) {
    const want = c.prefix;
    return (v) => v !== null && v.startsWith(want);
  }
  const re = new RegExp(c.regex ?? '');
  return (v) => v !== null && re.test(v);
}

function compileRule(rule: RoutingRule): (f: CallFacts) => boolean {
  const tests: ((f: CallFacts) => boolean)[] = [];
  const m = rule.match;
  if (m.requestUriUser) {
    const t = compileCondition(m.requestUriUser);
    tests.push((f) => t(f.requestUriUser));
  }
  if (m.toUser) {
    const t = compileCondition(m.toUser);
    tests.push((f) => t(f.toUser));
  }
  if (m.fromNumber) {
    // The asserted identity is the caller's number when present; From is only a claim.
    const t = compileCondition(m.fromNumber);
    tests.push((f) => t(f.paiNumber ?? f.fromNumber));
  }
  if (m.trunk !== undefined) {
    const want = m.trunk;
    tests.push((f) => f.trunk === want);
  }
  if (m.header) {
    const t = compileCondition(m.header);
    const name = m.header.name;
    tests.push((f) => f.header(name).some((v) => t(v)));
  }
  return (f) => tests.every((t) => t(f));
}
