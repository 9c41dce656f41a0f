/**
 * Per-host path prefixes: the ledger names a file by a path that is the same on every host,
 * while each host reaches the share at a mount point of its own.
 *
 *   host A: "pathPrefixes": [{ "local": "/mnt/a/share", "shared": "/share" }]
 *   host B: "pathPrefixes": [{ "local": "/srv/share",   "shared": "/share" }]
 *
 *   /mnt/a/share/in/x.csv (A)  <->  /share/in/x.csv (ledger)  <->  /srv/share/in/x.csv (B)
 *
 * A prefix matches whole path components only (/mnt/a/share does not match /mnt/a/shared), and
 * the configuration refuses prefixes nested in one another (src/config/resolve.ts), so at most
 * one prefix matches any path and the mapping is the same both ways. A path under no prefix is
 * stored as it is: a host with folders of its own besides the share needs no mapping for them.
 */

export interface PathPrefix {
  /** Absolute path on this host, without a trailing slash. */
  readonly local: string;
  /** The name every host uses in the ledger, without a trailing slash ("/share", "nfs1:"). */
  readonly shared: string;
}

export class PathMap {
  private readonly prefixes: readonly PathPrefix[];

  constructor(prefixes: readonly PathPrefix[]) {
    this.prefixes = prefixes.map((p) => ({ local: p.local, shared: p.shared }));
  }

  get empty(): boolean {
    return this.prefixes.length === 0;
  }

  /** This host's path to the ledger's name for it. */
  toShared(local: string): string {
    for (const p of this.prefixes) {
      const rest = below(local, p.local);
      if (rest !== null) return p.shared + rest;
    }
    return local;
  }

  /** The ledger's name to this host's path. */
  toLocal(shared: string): string {
    for (const p of this.prefixes) {
      const rest = below(shared, p.shared);
      if (rest !== null) return p.local + rest;
    }
    return shared;
  }
}

/** What follows `prefix` in `p` ("" or "/..."), or null when `p` is not `prefix` or below it. */
function below(p: string, prefix: string): string | null {
  if (p === prefix) return '';
  if (p.startsWith(prefix) && p.charCodeAt(prefix.length) === 47 /* "/" */) return p.slice(prefix.length);
  return null;
}
