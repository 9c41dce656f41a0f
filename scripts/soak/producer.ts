/**
 * The producer: drops files into the inbox at a steady rate, the way real senders do:
 *
 *   atomic     written as a dotfile in the same folder, then renamed to its final name (70%)
 *   direct     written in place in one write() (10%)
 *   slow       written in place in 3-6 chunks, 80-160 ms apart, well under stableMs (10%)
 *   overwrite  a name dropped 1-5 s earlier is replaced by new content, atomically (10%)
 *
 * Each content is `<directive>\nid <name>#<gen>\n<rows>`; the directive (see handler.pl) decides
 * what the handler does, so the checker knows what outcome to expect. A name is unique for the
 * whole run (`f000123`), gen counts its contents (overwrites).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Random } from './random.js';

export interface Gen {
  gen: number;
  directive: string;
  how: 'atomic' | 'direct' | 'slow' | 'overwrite';
  /** Bytes of the complete content. */
  size: number;
  /** Monotonic ns when the content was complete under its final name. */
  doneAt: bigint | null;
  /** Slow writes: the longest pause between two chunks as it really happened (ms). */
  maxGapMs: number;
}

export interface Dropped {
  name: string;
  /** Path relative to the inbox. */
  rel: string;
  gens: Gen[];
}

export interface ProducerStats {
  names: number;
  contents: number;
  byHow: Record<Gen['how'], number>;
}

const SUBFOLDERS = ['', '', '', 'sub1', 'sub2', 'deep/er/still'];

export class Producer {
  readonly dropped = new Map<string, Dropped>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0n;
  private made = 0;
  private readonly slowInFlight = new Set<Promise<void>>();
  /** Names whose latest content is complete, candidates for an overwrite. */
  private readonly recent: Dropped[] = [];
  readonly stats: ProducerStats = { names: 0, contents: 0, byHow: { atomic: 0, direct: 0, slow: 0, overwrite: 0 } };
  /** Write errors (the inbox should never refuse a write; any error is reported). */
  readonly errors: string[] = [];

  constructor(
    private readonly inbox: string,
    private readonly rate: number,
    private readonly rnd: Random,
  ) {
    for (const s of SUBFOLDERS) if (s) fs.mkdirSync(path.join(inbox, s), { recursive: true });
  }

  start(): void {
    this.startedAt = process.hrtime.bigint();
    this.timer = setInterval(() => this.tick(), 20);
  }

  /** Stop dropping; resolves once every slow write in flight is complete. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.slowInFlight]);
  }

  private tick(): void {
    const elapsedS = Number(process.hrtime.bigint() - this.startedAt) / 1e9;
    // Catch up after a stalled event loop, but never more than half a second's worth at once.
    const due = Math.min(Math.floor(elapsedS * this.rate) - this.made, Math.ceil(this.rate / 2));
    for (let i = 0; i < due; i++) {
      this.made++;
      try {
        this.dropOne();
      } catch (err) {
        this.errors.push((err as Error).message);
      }
    }
  }

  private directive(): string {
    const p = this.rnd.next();
    if (p < 0.03) return `sleep ${this.rnd.int(100, 3000)}`;
    if (p < 0.09) return 'fail 1';
    if (p < 0.11) return 'always-fail';
    if (p < 0.14) return 'permanent';
    return 'ok';
  }

  private content(name: string, gen: number, directive: string): string {
    let s = `${directive}\nid ${name}#${gen}\n`;
    const rows = this.rnd.int(1, 20);
    for (let i = 0; i < rows; i++) s += `${i},${name},${gen},${'x'.repeat(this.rnd.int(0, 60))}\n`;
    return s;
  }

  private dropOne(): void {
    const p = this.rnd.next();
    const now = process.hrtime.bigint();
    if (p < 0.1) {
      // Overwrite a name whose latest content has been complete for 1-5 s.
      // `recent` is in order of completion: drop what is older than 5 s, pick among the rest
      // that are older than 1 s, so overwrites land anywhere in a file's life in ckpt (waiting,
      // being handled, being moved, moved).
      while (this.recent.length > 0 && now - (this.recent[0]!.gens.at(-1)?.doneAt ?? now) > 5_000_000_000n) this.recent.shift();
      let n = 0;
      while (n < this.recent.length && now - (this.recent[n]!.gens.at(-1)?.doneAt ?? now) > 1_000_000_000n) n++;
      if (n > 0) {
        const d = this.recent.splice(this.rnd.int(0, n - 1), 1)[0]!;
        this.writeAtomic(d, 'overwrite');
        return;
      }
    }
    const name = `f${String(++this.seq).padStart(7, '0')}`;
    const sub = this.rnd.pick(SUBFOLDERS);
    const d: Dropped = { name, rel: sub ? `${sub}/${name}.csv` : `${name}.csv`, gens: [] };
    this.dropped.set(name, d);
    this.stats.names++;
    if (p < 0.2) this.writeDirect(d);
    else if (p < 0.3) this.writeSlow(d);
    else this.writeAtomic(d, 'atomic');
  }

  private newGen(d: Dropped, how: Gen['how']): { g: Gen; text: string } {
    const gen = d.gens.length + 1;
    const directive = this.directive();
    const text = this.content(d.name, gen, directive);
    const g: Gen = { gen, directive, how, size: Buffer.byteLength(text), doneAt: null, maxGapMs: 0 };
    d.gens.push(g);
    this.stats.contents++;
    this.stats.byHow[how]++;
    return { g, text };
  }

  private remember(d: Dropped): void {
    this.recent.push(d);
  }

  private writeAtomic(d: Dropped, how: 'atomic' | 'overwrite'): void {
    const { g, text } = this.newGen(d, how);
    const final = path.join(this.inbox, d.rel);
    const tmp = path.join(path.dirname(final), `.${d.name}.${g.gen}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, final);
    g.doneAt = process.hrtime.bigint();
    this.remember(d);
  }

  private writeDirect(d: Dropped): void {
    const { g, text } = this.newGen(d, 'direct');
    fs.writeFileSync(path.join(this.inbox, d.rel), text);
    g.doneAt = process.hrtime.bigint();
    this.remember(d);
  }

  private writeSlow(d: Dropped): void {
    const { g, text } = this.newGen(d, 'slow');
    const final = path.join(this.inbox, d.rel);
    // The first chunk holds the directive and id lines whole: a handler that reads the file
    // too early still knows what it read.
    const firstEnd = text.indexOf('\n', text.indexOf('\n') + 1) + 1;
    const chunks = this.rnd.int(3, 6);
    const rest = text.slice(firstEnd);
    const parts = [text.slice(0, firstEnd)];
    const per = Math.ceil(rest.length / (chunks - 1));
    for (let i = 0; i < chunks - 1; i++) parts.push(rest.slice(i * per, (i + 1) * per));
    const fd = fs.openSync(final, 'w');
    const job = (async () => {
      let last = process.hrtime.bigint();
      try {
        for (const [i, part] of parts.entries()) {
          if (i > 0) await new Promise((r) => setTimeout(r, this.rnd.int(80, 160)));
          const t = process.hrtime.bigint();
          if (i > 0) g.maxGapMs = Math.max(g.maxGapMs, Number(t - last) / 1e6);
          last = t;
          if (part.length > 0) fs.writeSync(fd, part);
        }
      } catch (err) {
        this.errors.push(`slow write of ${final}: ${(err as Error).message}`);
      } finally {
        fs.closeSync(fd);
      }
      g.doneAt = process.hrtime.bigint();
      this.remember(d);
    })();
    this.slowInFlight.add(job);
    void job.finally(() => this.slowInFlight.delete(job));
  }
}
