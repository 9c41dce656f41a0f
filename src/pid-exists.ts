/**
 * The one "is this pid alive" check (no imports: every layer may use it).
 *
 * kill(pid, 0) sends nothing; it fails with ESRCH when no process has the pid and with EPERM
 * when one has it but belongs to another user (the daemon's `ckpt` user, seen from root or an
 * operator's shell), which is alive too. A zombie counts as alive here; process-identity.ts
 * looks further (/proc) where that matters. Only this host's pids can be asked about.
 */
export function pidExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
