/**
 * Every metric name, declared once (STYLE.md 10; README "Metrics" lists them). Prefix ddpm_,
 * snake_case, base units: `_total` counters, `_seconds` and `_bytes` suffixes.
 */
import { LOSS_BUCKETS } from '../training/workUnit';

export const METRIC = {
  steps: 'ddpm_steps_total',
  examples: 'ddpm_examples_total',
  step: 'ddpm_step',
  stepDuration: 'ddpm_step_duration_seconds',
  loss: 'ddpm_loss',
  lossByTimestep: 'ddpm_loss_by_timestep',
  gradNorm: 'ddpm_grad_norm',
  learningRate: 'ddpm_learning_rate',
  imagesPerSecond: 'ddpm_images_per_second',
  workers: 'ddpm_workers',
  workerCompute: 'ddpm_worker_compute_seconds_total',
  workerSecondsPerUnit: 'ddpm_worker_seconds_per_unit',
  sentBytes: 'ddpm_sent_bytes_total',
  receivedBytes: 'ddpm_received_bytes_total',
  unitsReassigned: 'ddpm_units_reassigned_total',
  unitsBackedUp: 'ddpm_units_backed_up_total',
  resultsRejected: 'ddpm_results_rejected_total',
  checkpointDuration: 'ddpm_checkpoint_duration_seconds',
  checkpointLastSuccess: 'ddpm_checkpoint_last_success_timestamp_seconds',
  // Served by `ddpm worker --metrics-port`.
  workerUnits: 'ddpm_worker_units_total',
  workerUnitDuration: 'ddpm_worker_unit_duration_seconds',
} as const;

/** `bucket` label values of ddpm_loss_by_timestep: T split into LOSS_BUCKETS equal ranges. */
export const LOSS_BUCKET_LABELS: readonly string[] = Array.from({ length: LOSS_BUCKETS }, (_, b) => String(b));

/**
 * `reason` label values of ddpm_results_rejected_total known in advance: the ProtocolError reasons
 * that decodeMessage (protocol/messages.ts), decodeResult (protocol/units.ts) and RemoteExecutor
 * throw on the coordinator. A reason added there later still counts; it just appears on first use.
 */
export const REJECT_REASONS: readonly string[] = [
  'empty', 'too_many_frames', 'oversized', 'malformed', 'protocol_version', 'unknown_kind', 'frame_count',
  'dtype', 'shape', 'tensor_size', 'missing_tensor', 'non_finite',
  'unknown_worker', 'run_mismatch', 'unexpected_kind', 'stale', 'not_assigned', 'duplicate',
];

/** The `worker` label of ddpm_worker_compute_seconds_total for `ddpm train --workers 0`. */
export const IN_PROCESS_WORKER = 'in-process';
