/**
 * Saves checkpoints in a process of its own, so that a file-size limit (ulimit -f) or a private
 * tmpfs (unshare) applies to it alone. test/checkpoint.test.ts bundles it with esbuild.
 *
 * Usage: node checkpointSaveChild.js ROOT STEP...
 * Saves fixtureState(STEP) for each STEP in turn, then calls loadLatest(), and prints one JSON
 * line: each save's outcome, the loaded step, whether it matches its fixture bit for bit, the
 * warnings, and the entries left in ROOT.
 */
import * as fs from 'fs';
import { CheckpointStore } from '../../src/checkpoint/store';
import { CHILD_SPECS, FIXTURE_CONFIG, fixtureState, sameState, specsSize } from './checkpointFixture';

const [root, ...stepArgs] = process.argv.slice(2);
const n = specsSize(CHILD_SPECS);
const warnings: string[] = [];
const store = new CheckpointStore(root, CHILD_SPECS, (line) => warnings.push(line));
const saves = stepArgs.map(Number).map((step) => {
  try {
    store.save({ config: FIXTURE_CONFIG, state: fixtureState(step, n), loss: step, dataCursor: step * 8 });
    return { step, ok: true };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return { step, ok: false, name: e.name, message: e.message, code: e.cause?.code };
  }
});
const entriesAfterSaves = fs.readdirSync(root).sort();
const loaded = store.loadLatest();
process.stdout.write(`${JSON.stringify({
  saves,
  entriesAfterSaves,
  loadedStep: loaded?.state.step ?? null,
  loadedMatches: loaded !== undefined && sameState(loaded.state, fixtureState(loaded.state.step, n)),
  warnings,
})}\n`);
