import { expect } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';

/** The ConfigError thrown by fn (fails the test if fn returns or throws anything else). */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}
