import fs from 'node:fs';

/**
 * The names in a folder, or none when it cannot be read (not there yet, removed meanwhile, no
 * permission): every caller lists a folder to clean up or to read what is there, and a folder
 * that is not there holds nothing to do.
 */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
