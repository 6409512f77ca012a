/**
 * The transport seam (STYLE.md 7): roles talk to channels; ZeroMQ implements them for real and
 * an in-memory pair serves unit tests.
 */

export interface Incoming {
  /** Identity of the sending peer (ROUTER routing id). */
  peer: string;
  frames: Buffer[];
}

/** The coordinator's side: many peers, addressed by identity. */
export interface ServerChannel {
  send(peer: string, frames: Buffer[]): Promise<void>;
  /** Resolves with the next message, or undefined once the channel is closed. */
  receive(): Promise<Incoming | undefined>;
  close(): void;
}

/** A worker's side: one coordinator. */
export interface ClientChannel {
  /** With `timeoutMs`, gives up (rejects) if the message cannot be queued in time, counting the
   * wait behind this channel's earlier sends. */
  send(frames: Buffer[], timeoutMs?: number): Promise<void>;
  /** Resolves with the next message, undefined after `timeoutMs` without one or once closed. */
  receive(timeoutMs: number): Promise<Buffer[] | undefined>;
  /** How often the connection dropped (e.g. the transport's heartbeat timed out while the
   * coordinator was paused) and was made again: messages queued on a dropped connection, in either
   * direction, are lost. Absent on a channel that cannot drop. */
  readonly reconnects?: number;
  close(): void;
}
