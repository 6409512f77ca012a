/** A command's --checkpoint argument with its U-Net (kept out of checkpoint/store.ts, which
 * reads and writes files without the model or tfjs). */
import { LoadedCheckpoint, loadCheckpointArg, readCheckpointConfig, resolveCheckpointDir } from '../checkpoint/store';
import { UNetModel } from '../model/unetModel';

/** loadCheckpointArg with the U-Net the checkpoint's config describes (whose specs it reads). */
export function loadModelCheckpoint(arg: string, log: (line: string) => void): { model: UNetModel; loaded: LoadedCheckpoint } {
  const model = new UNetModel(readCheckpointConfig(resolveCheckpointDir(arg)).model);
  return { model, loaded: loadCheckpointArg(arg, model.specs, log) };
}
