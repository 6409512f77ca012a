/**
 * Rejected messages: counted by reason, logged once per peer and reason (not per message). The
 * set of logged pairs is bounded, so strangers with ever-new identities cannot grow it forever.
 */
const MAX_LOGGED_PAIRS = 1000;

export class RejectLog {
  readonly counts = new Map<string, number>();
  private readonly logged = new Set<string>();

  constructor(private readonly log: (line: string) => void) {}

  /** Counts one rejection; returns the new count for its reason. */
  add(peer: string, reason: string, detail: string): number {
    const n = (this.counts.get(reason) ?? 0) + 1;
    this.counts.set(reason, n);
    const key = this.logged.size < MAX_LOGGED_PAIRS ? `${peer}\u0000${reason}` : `*\u0000${reason}`;
    if (!this.logged.has(key)) {
      this.logged.add(key);
      const who = key.startsWith('*') ? 'one of many peers' : JSON.stringify(peer.slice(0, 64));
      this.log(`rejected a message from ${who} (${reason}): ${detail.slice(0, 200)} (further ones counted, not logged)`);
    }
    return n;
  }
}
