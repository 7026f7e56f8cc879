// The policy a conference-in request runs with: a snapshot taken when the request starts (a
// reload applies to new requests only). Pure data, built from the configuration.

export type Stage = 'home' | 'buffer' | 'overflow';

/** One region as the procedure dials it. */
export interface RegionPlan {
  id: string;
  name: string;
  /** Primary queue: attempts go here. */
  targets: string[];
  attempts: number;
  ringTimerMs: number;
  /** Minimum time between the starts of two attempts on this region. */
  spacingMs: number;
}

export interface ProcedurePolicy {
  home: RegionPlan & {
    /** Optional buffer queue, tried after the primary attempts. */
    bufferTargets: string[];
    bufferAttempts: number;
    /** Message endpoints: primary first. */
    messageEndpoints: string[];
    escalationMs: number;
  };
  overflow: {
    policy: 'none' | 'before-message' | 'after-message';
    regions: RegionPlan[];
  };
  /** How long a cancelled attempt may take to end (its 487, or a 200 crossing the CANCEL). */
  cancelGraceMs: number;
}

/** One step of the plan: an attempt on a queue, or the message. */
export type Step =
  | { kind: 'attempt'; stage: Stage; region: RegionPlan; targets: string[]; ringTimerMs: number; spacingMs: number }
  | { kind: 'message' };

/**
 * The Danish procedure as a list of steps: the home region's attempts (primary queue, then the
 * buffer queue), overflow regions when the region's policy tries them before the message, the
 * message "Ingen kontakt til AMK", then overflow regions when tried after it.
 */
export function planSteps(p: ProcedurePolicy): Step[] {
  const steps: Step[] = [];
  const attempts = (stage: Stage, region: RegionPlan, targets: string[], n: number) => {
    for (let i = 0; i < n; i++) steps.push({ kind: 'attempt', stage, region, targets, ringTimerMs: region.ringTimerMs, spacingMs: region.spacingMs });
  };
  attempts('home', p.home, p.home.targets, p.home.attempts);
  if (p.home.bufferTargets.length) attempts('buffer', p.home, p.home.bufferTargets, p.home.bufferAttempts);
  const overflow = () => {
    for (const r of p.overflow.regions) attempts('overflow', r, r.targets, r.attempts);
  };
  if (p.overflow.policy === 'before-message') overflow();
  steps.push({ kind: 'message' });
  if (p.overflow.policy === 'after-message') overflow();
  return steps;
}
