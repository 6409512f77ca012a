/**
 * Whether this machine has a Vulkan loader, checked before Dawn is asked for an adapter: without
 * one, Dawn prints a multi-line native warning to stderr (a source location that reads like a
 * stack trace) before reporting no adapter, on every CPU-only machine that tries `auto`.
 */
import * as fs from 'fs';
import * as path from 'path';

const LOADER = 'libvulkan.so.1';
const STANDARD_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/lib64', '/usr/lib', '/lib', '/usr/local/lib'];

/** Directories named in /etc/ld.so.conf.d/*.conf (one per line; comments and includes skipped). */
function configuredDirs(): string[] {
  const confDir = '/etc/ld.so.conf.d';
  try {
    return fs.readdirSync(confDir).filter((f) => f.endsWith('.conf')).flatMap((f) =>
      fs.readFileSync(path.join(confDir, f), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')));
  } catch {
    return [];
  }
}

/** The loader's path, or undefined when none of the dynamic linker's usual places has it. Only
 * Linux is checked; elsewhere Dawn is left to find its own driver (returns 'not checked'). */
export function findVulkanLoader(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux') return 'not checked';
  const fromEnv = (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d !== '');
  for (const dir of [...fromEnv, ...configuredDirs(), ...STANDARD_DIRS]) {
    const candidate = path.join(dir, LOADER);
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}
