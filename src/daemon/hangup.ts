/**
 * SIGHUP from a process's first moments: Node's default for it is to exit with 129, silently.
 * The daemon reloads its configuration on it (src/daemon/reload.ts); one that arrives while
 * ckpt is still starting is kept until the daemon is up. No imports: `ckpt run` installs it
 * before it loads the daemon's modules.
 */

export interface HangupListener {
  /** Calls `onHangup` for every SIGHUP from now on, and at once for one that came before. */
  attach(onHangup: () => void): void;
  close(): void;
}

/** Listens to SIGHUP from now on; one that arrives before attach() is kept for it. */
export function listenForHangup(): HangupListener {
  let pending = false;
  let handler: (() => void) | null = null;
  const on = () => {
    if (handler) handler();
    else pending = true;
  };
  process.on('SIGHUP', on);
  return {
    attach(onHangup) {
      handler = onHangup;
      if (pending) {
        pending = false;
        onHangup();
      }
    },
    close: () => void process.off('SIGHUP', on),
  };
}
