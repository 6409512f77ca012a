/** An environment variable that must be one of a few words (the first is the default). */
export function envChoice<T extends string>(name: string, choices: readonly T[], env: NodeJS.ProcessEnv = process.env): T {
  const value = env[name] ?? choices[0];
  if (!(choices as readonly string[]).includes(value)) throw new Error(`${name}=${value} is not one of ${choices.join(', ')}`);
  return value as T;
}
