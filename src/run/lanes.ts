/**
 * The runner's lanes: one per route (the files of its file type, docs/routes.md) and the default
 * lane (every other type, under the top-level settings). A lane claims only its own types, and
 * only while it has a slot free under its cap, so a feed whose handler is slow or failing holds
 * at most its cap of the process's slots and never sits at the head of another feed's queue.
 *
 * Without routes there is one lane with no filter and the whole pool as its cap: the claim is the
 * same single unfiltered claim as before routes existed.
 */
import type { ExpiryRoute, FileTypeFilter } from '../store/types.js';
import { afterActionLabel } from './after-action.js';
import type { ClaimSettings, RunnerFolder, RunnerOptions } from './runner-options.js';

export type { RunnerRoute } from './runner-options.js';

export interface Lane {
  /** The route's file type; '' for the default lane. */
  key: string;
  cap: number;
  /** What the lane's claims may take; undefined: anything. */
  filter: FileTypeFilter | undefined;
  /** Captured with each claim the lane makes. */
  settings: ClaimSettings;
  paused: () => boolean;
}

const never = () => false;

type LaneSource = Pick<RunnerOptions, 'handler' | 'folders' | 'onSuccess' | 'onDead' | 'concurrency' | 'routes' | 'paused'>;

export class Lanes {
  readonly all: readonly Lane[];
  private readonly byType: ReadonlyMap<string, Lane>;
  private readonly fallback: Lane;

  constructor(o: LaneSource) {
    const routes = o.routes ?? [];
    const types = routes.map((r) => r.fileType);
    this.fallback = {
      key: '',
      cap: o.concurrency,
      filter: types.length === 0 ? undefined : { types, except: true },
      // retry absent: the store's policy (the top level's, updated in place by a reload).
      settings: { handler: o.handler, folders: o.folders, onSuccess: o.onSuccess, onDead: o.onDead },
      paused: o.paused ?? never,
    };
    const lanes = routes.map(
      (r): Lane => ({
        key: r.fileType,
        cap: Math.min(r.concurrency, o.concurrency),
        filter: { types: [r.fileType] },
        settings: { handler: r.handler, folders: o.folders, onSuccess: r.onSuccess, onDead: r.onDead, retry: r.retry },
        paused: r.paused ?? never,
      }),
    );
    this.byType = new Map(lanes.map((l) => [l.key, l]));
    this.all = [...lanes, this.fallback];
    const expiry = new Map(routes.map((r): [string, ExpiryRoute] => [r.fileType, { retry: r.retry, deadAfterAction: afterActionLabel(r.onDead) }]));
    this.expiryRoute = (fileType) => expiry.get(fileType);
  }

  /** For the store's lease sweep: the retry and dead after-action of a route's file type (ClaimOptions.routeOf). */
  readonly expiryRoute: (fileType: string) => ExpiryRoute | undefined;

  /** The lane a file of this type belongs to. */
  of(fileType: string): Lane {
    return this.byType.get(fileType) ?? this.fallback;
  }

  /** The lane of the files in a watched folder (by the folder's file type), the default lane outside them. */
  ofFolder(folder: RunnerFolder | undefined): Lane {
    return folder?.fileType === undefined ? this.fallback : this.of(folder.fileType);
  }

  /** The lanes starting at `turn` (mod their number): each fill begins with the next lane, so none is always served last. */
  from(turn: number): Lane[] {
    const n = this.all.length;
    const k = ((turn % n) + n) % n;
    return [...this.all.slice(k), ...this.all.slice(0, k)];
  }
}
