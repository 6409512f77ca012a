/** `ddpm export`: a checkpoint's U-Net as a safetensors file with PyTorch's names and layouts. */
import type { CommandModule } from 'yargs';
import { loadModelCheckpoint } from './checkpointArg';
import type { UNetModel } from '../model/unetModel';
import { encodeSafetensors } from '../checkpoint/safetensors';
import { toTorch } from '../model/torchLayout';
import { TrainConfig } from '../training/config';
import { checkOutputDir, writeOutputFile } from './options';

export const EXPORT_FORMAT = 'ddpm-cluster-unet';
export const WEIGHT_CHOICES = ['ema', 'raw'] as const;
type Weights = (typeof WEIGHT_CHOICES)[number];

interface ExportArgs {
  checkpoint: string;
  weights: string;
  out: string;
}

/** What a PyTorch user needs beside the tensors to build the model and sample from it; the
 * values are strings, as safetensors requires. */
export function exportMetadata(config: TrainConfig, step: number, weights: Weights, parameters: number): Record<string, string> {
  return {
    format: EXPORT_FORMAT,
    unet_config: JSON.stringify(config.model),
    prediction: config.prediction,
    schedule: config.schedule,
    timesteps: String(config.timesteps),
    step: String(step),
    weights,
    parameters: String(parameters),
    ...(config.classNames && config.classNames.length > 0 ? { class_names: JSON.stringify(config.classNames) } : {}),
  };
}

/** The file `ddpm export` writes: every parameter of `flat` under PyTorch's name and layout. */
export function encodeExport(model: UNetModel, flat: Float32Array, metadata: Record<string, string>): Uint8Array {
  const views = model.flatViews(flat);
  return encodeSafetensors({ tensors: model.specs.map((spec, i) => toTorch(spec, views[i])), metadata });
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export',
  describe: 'write a checkpoint\'s U-Net as safetensors, under PyTorch\'s names and layouts (scripts/torch/ddpm_unet.py loads it)',
  builder: (y) => y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'checkpoint directory (a run directory uses its latest)' })
    .option('weights', { type: 'string', choices: WEIGHT_CHOICES, default: 'ema', describe: 'the EMA weights (what sampling uses) or the raw parameters' })
    .option('out', { type: 'string', default: 'model.safetensors', describe: 'output file, replaced atomically' }) as never,
  handler: (a) => {
    checkOutputDir(a.out, 'out');
    const { model, loaded } = loadModelCheckpoint(a.checkpoint, (l) => process.stderr.write(`${l}\n`));
    const weights = a.weights as Weights;
    const metadata = exportMetadata(loaded.config, loaded.state.step, weights, model.size);
    writeOutputFile('out', a.out, encodeExport(model, weights === 'ema' ? loaded.state.ema : loaded.state.params, metadata));
    process.stderr.write(`wrote ${a.out}: ${model.specs.length} tensors, ${model.size} parameters (${weights}) from ${loaded.dir} (step ${loaded.state.step})\n`);
  },
};
