/** The coordinator's progress line: step, loss, images/s, workers, ETA; text or JSON. */

export type LogFormat = 'text' | 'json';

export interface ProgressSample {
  step: number;
  totalSteps: number;
  loss: number;
  imagesPerSecond: number;
  workers: number;
  etaSeconds: number;
  learningRate: number;
  gradNorm: number;
}

/** 1h02m, 3m05s; ? when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function formatProgress(p: ProgressSample, format: LogFormat): string {
  if (format === 'json') return JSON.stringify({ event: 'progress', ...p });
  return `step ${p.step}/${p.totalSteps}  loss ${p.loss.toFixed(4)}  ${p.imagesPerSecond.toFixed(1)} img/s  ` +
    `workers ${p.workers}  lr ${p.learningRate.toExponential(2)}  ETA ${formatDuration(p.etaSeconds)}`;
}
