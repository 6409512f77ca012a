/** Tests run from TypeScript sources; cross-process tests spawn the built CLI in dist/. */
// Mesa's EGL reads EGL_PLATFORM from the real environment when Dawn opens it (webgpu tests run
// Dawn's GL backend on llvmpipe); jest gives each test a copy of process.env, so set it here.
process.env.EGL_PLATFORM = process.env.EGL_PLATFORM || 'surfaceless';
// llvmpipe runs compute on a thread per core by default; jest already runs two test files at
// once on two cores, and the timing-sensitive process tests must not starve.
process.env.LP_NUM_THREADS = process.env.LP_NUM_THREADS || '1';

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }] },
  testTimeout: 120000,
  maxWorkers: 2,
};
