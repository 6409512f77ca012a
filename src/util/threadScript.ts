/** Where a worker_threads script compiled from src/ is: beside the caller in dist/ and in bundles
 * that list it as an entry point; in dist/ when the caller runs from TypeScript (ts-jest). */
import * as fs from 'fs';
import * as path from 'path';

export function threadScript(callerDir: string, srcDir: string, name: string): string {
  const beside = path.join(callerDir, `${name}.js`);
  if (fs.existsSync(beside)) return beside;
  const built = path.resolve(callerDir, '..', '..', 'dist', srcDir, `${name}.js`);
  if (fs.existsSync(built)) return built;
  throw new Error(`thread script ${name}.js not found (${beside}; run npm run build)`);
}
