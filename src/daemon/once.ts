/**
 * `ckpt run --once`: which files this run handed on, how each ended, the progress bar, and the
 * wait until every one is settled (completed, dead or purged) with its exit code.
 */
import type { Logger } from 'pino';
import { EXIT } from '../cli/exit-codes.js';
import { createProgress, type Progress } from '../ops/progress.js';
import type { OutcomeKind } from '../run/runner.js';
import type { CheckpointStore } from '../store/types.js';

type Settled = 'completed' | 'dead' | 'purged';

/** What the wait looks at besides the ledger: nothing may still be on its way to it. */
export interface OnceActivity {
  /** A reload is rebuilding the watcher: its first scan may hand on more files. */
  reloading(): boolean;
  /** Files the watcher tracks or has queued, and whether the runner has nothing running. */
  watcher(): { tracked: number; queued: number };
  runnerIdle(): boolean;
}

export class OnceRun {
  private readonly handed = new Set<string>();
  /** How each file handed on ended (purged: a tombstone keeps it from running again). */
  private readonly settled = new Map<string, Settled>();
  /** Purged files are not run: the bar counts the others. */
  private purgedSeen = 0;
  private readonly progress: Progress;

  constructor(
    private readonly store: CheckpointStore,
    private readonly log: Logger,
  ) {
    // A bar on a terminal, log lines otherwise.
    this.progress = createProgress({ total: 0, tty: process.stderr.isTTY === true, logger: log });
  }

  /** Files handed on to the store since start. */
  handedOn(files: readonly string[]): void {
    for (const f of files) this.handed.add(f);
    this.progress.setTotal(this.handed.size - this.purgedSeen);
  }

  outcome(file: string, outcome: OutcomeKind): void {
    if (outcome === 'completed' || outcome === 'dead') {
      this.settled.set(file, outcome);
      // Claimed without a sighting here (a requeued file, say): it still counts in the summary.
      if (!this.handed.has(file)) this.progress.setTotal(this.handed.add(file).size - this.purgedSeen);
    }
    this.progress.tick(outcome);
  }

  /** A new version of a settled file: --once must wait for it again. */
  reopened(file: string): void {
    this.settled.delete(file);
  }

  finish(): void {
    this.progress.finish();
  }

  /** Every file handed on since start is completed, dead or purged (retries waited out): the exit code. */
  async untilAllSettled(activity: OnceActivity): Promise<number> {
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      if (activity.reloading()) continue;
      const w = activity.watcher();
      if (w.tracked > 0 || w.queued > 0 || !activity.runnerIdle()) continue;
      if ((await this.openFiles()) === 0) return this.summary();
    }
  }

  private async openFiles(): Promise<number> {
    let open = 0;
    for (const f of this.handed) {
      if (this.settled.has(f)) continue;
      const s = await this.settledAs(f);
      if (s === null) open++;
      else this.settled.set(f, s);
      // Not run, so not in the bar's count either (it stood at 0 of N for ever).
      if (s === 'purged') this.progress.setTotal(this.handed.size - ++this.purgedSeen);
    }
    return open;
  }

  /**
   * A file with no row was purged (its tombstone kept discovery from adding one): it will not
   * run, so it is settled too, or --once would wait for it for ever.
   */
  private async settledAs(f: string): Promise<Settled | null> {
    const rec = await this.store.get(f).catch(() => null);
    if (rec) return rec.status === 'completed' || rec.status === 'dead' ? rec.status : null;
    return (await this.store.tombstone(f).catch(() => null)) ? 'purged' : null;
  }

  private summary(): number {
    const n = { completed: 0, dead: 0, purged: 0 };
    for (const s of this.settled.values()) n[s]++;
    this.log.info({ files: this.handed.size, ...n }, '--once: every file is settled');
    if (n.purged > 0) this.log.info({ purged: n.purged }, 'purged files still in the folder were not run again (a tombstone holds each; `ckpt retry FILE` lets one run)');
    return n.dead > 0 ? EXIT.DEAD_FILES : EXIT.OK;
  }
}
