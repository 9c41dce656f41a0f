/**
 * Errors a user's handler can throw to steer what ckpt does with the file.
 */

/**
 * Thrown by a module handler when retrying cannot help (the file itself is bad: wrong format,
 * rejected by the sink's schema...). The file goes to `dead` at once instead of using up its
 * retry budget. A command handler says the same thing with exit code 65 (EX_DATAERR).
 *
 * The user's module may import a different copy of ckpt than the daemon runs (its own
 * node_modules, a bundled copy, a different version), so `instanceof` alone is not enough:
 * isPermanentError() also accepts anything named `PermanentError` or carrying
 * `permanent: true`.
 */
export class PermanentError extends Error {
  readonly permanent = true as const;

  constructor(message?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/** True for a PermanentError from any copy of ckpt, or any error that says it is permanent. */
export function isPermanentError(err: unknown): boolean {
  if (err instanceof PermanentError) return true;
  if (typeof err !== 'object' || err === null) return false;
  try {
    const e = err as { name?: unknown; permanent?: unknown };
    return e.name === 'PermanentError' || e.permanent === true;
  } catch {
    // A hostile getter (a Proxy, a throwing accessor) must not turn a failure into a crash.
    return false;
  }
}
