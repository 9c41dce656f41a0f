import { createHash } from 'node:crypto';

/**
 * The key a sink de-duplicates on: the same for every attempt at one version of one file, and
 * different for a new version (the file was re-dropped with other content). 32 hex characters
 * of SHA-256 over the path and the version.
 */
export function idempotencyKey(fileUrl: string, version: number): string {
  return createHash('sha256').update(fileUrl).update('\0').update(String(version)).digest('hex').slice(0, 32);
}
