/** prom-client's default process metrics, minus the three gauges it names *_total (promtool rejects
 * a gauge with a counter's suffix); their per-type twins without the suffix stay. */
import { Registry, collectDefaultMetrics } from 'prom-client';

const MISNAMED_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function registerDefaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_GAUGES) registry.removeSingleMetric(name);
}
