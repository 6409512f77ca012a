/** `ddpm model`: the U-Net's configuration and exact parameter count. */
import type { CommandModule } from 'yargs';
import { ModelArgs, modelConfigFromArgs, withModelOptions } from './options';
import { parameterCount, unetParamSpecs } from '../model/paramSpecs';

export const modelCommand: CommandModule<object, ModelArgs & { json: boolean }> = {
  command: 'model',
  describe: 'print a U-Net configuration and its parameter count',
  builder: (y) => withModelOptions(y, 'mnist').option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as never,
  handler: (a) => {
    const config = modelConfigFromArgs(a);
    const count = parameterCount(config);
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ config, parameters: count, tensors: unetParamSpecs(config).length })}\n`);
      return;
    }
    process.stdout.write(`preset ${a.preset}: ch ${config.channels}, mult ${config.channelMult.join(',')}, ${config.resBlocks} res blocks, ` +
      `attention at ${config.attentionResolutions.join(',') || 'none'} (+ middle), dropout ${config.dropout}, ` +
      `${config.imageSize}x${config.imageSize}x${config.imageChannels}\n`);
    process.stdout.write(`parameters: ${count}\n`);
  },
};
