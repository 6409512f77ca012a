/** `ddpm schedule`: the schedule arrays as JSON at full float64 precision. */
import type { CommandModule } from 'yargs';
import { ScheduleName, makeSchedule } from '../schedule';
import { withScheduleOptions } from './options';

export const scheduleCommand: CommandModule<object, { schedule: string; timesteps: number }> = {
  command: 'schedule',
  describe: 'print a noise schedule and its derived arrays as JSON',
  builder: (y) => withScheduleOptions(y) as never,
  handler: (a) => {
    const s = makeSchedule(a.schedule as ScheduleName, a.timesteps);
    const arrays = {
      betas: s.betas, alphasCumprod: s.alphasCumprod, posteriorVariance: s.posteriorVariance,
      posteriorLogVarianceClipped: s.posteriorLogVarianceClipped, posteriorMeanCoef1: s.posteriorMeanCoef1, posteriorMeanCoef2: s.posteriorMeanCoef2,
    };
    // JSON.stringify prints the shortest decimal that round-trips each float64 exactly.
    const json = Object.fromEntries(Object.entries(arrays).map(([k, v]) => [k, Array.from(v)]));
    process.stdout.write(`${JSON.stringify({ schedule: s.name, timesteps: s.timesteps, ...json })}\n`);
  },
};
