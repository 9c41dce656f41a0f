/**
 * JSON.parse with an error an operator can use: Node 20's messages give a position only for
 * some mistakes ("Unexpected token '}', ... is not valid JSON" has none), so when parsing fails
 * a small scanner walks the text again to find the line, the column and what was expected
 * there. It runs only on failure, so its speed does not matter.
 */

export interface JsonProblem {
  /** 1-based. */
  line: number;
  column: number;
  problem: string;
}

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; error: JsonProblem | string };

export function parseJson(text: string): JsonParseResult {
  // Editors on Windows like to start a file with a byte-order mark; JSON.parse rejects it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return { ok: true, value: JSON.parse(body) as unknown };
  } catch (err) {
    const found = locateJsonError(body);
    if (found !== null) return { ok: false, error: found };
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

class Stop extends Error {
  constructor(
    readonly offset: number,
    readonly problem: string,
  ) {
    super(problem);
  }
}

/** Where and why `text` is not JSON, or null when the scanner finds nothing wrong. */
export function locateJsonError(text: string): JsonProblem | null {
  const scan = new JsonScanner(text);
  try {
    scan.document();
    return null;
  } catch (err) {
    if (!(err instanceof Stop)) return null; // e.g. nesting too deep for the stack: use JSON.parse's message
    return { ...lineColumn(text, err.offset), problem: err.problem };
  }
}

/** A recursive-descent walk over JSON that stops (throws Stop) at the first thing wrong. */
class JsonScanner {
  private i = 0;

  constructor(private readonly text: string) {}

  document(): void {
    this.value();
    this.ws();
    if (this.i < this.text.length) this.fail('the end of the file after the JSON value');
  }

  private describe(at: number): string {
    if (at >= this.text.length) return 'the end of the file';
    return JSON.stringify(this.text[at] ?? '');
  }

  private fail(what: string, at = this.i): never {
    const { text } = this;
    const ch = text[at];
    if (ch === '/' && (text[at + 1] === '/' || text[at + 1] === '*')) throw new Stop(at, 'comments are not allowed in JSON');
    if (ch === "'") throw new Stop(at, 'strings must use double quotes (") in JSON');
    throw new Stop(at, `expected ${what}, found ${this.describe(at)}`);
  }

  private ws(): void {
    while (this.i < this.text.length && ' \t\n\r'.includes(this.text[this.i] ?? '')) this.i++;
  }

  private value(): void {
    this.ws();
    const ch = this.text[this.i];
    if (ch === '{') return this.container('}');
    if (ch === '[') return this.container(']');
    if (ch === '"') return this.string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return this.number();
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return;
      }
    }
    this.fail('a value (object, list, string, number, true, false or null)');
  }

  /** An object (close "}": key, ":", value pairs) or a list (close "]": values). */
  private container(close: '}' | ']'): void {
    const { text } = this;
    this.i++; // { or [
    this.ws();
    if (text[this.i] === close) {
      this.i++;
      return;
    }
    for (;;) {
      this.ws();
      if (text[this.i] === close) throw new Stop(this.i, `trailing comma before "${close}" is not allowed in JSON`);
      if (close === '}') this.key();
      this.value();
      this.ws();
      if (text[this.i] === ',') {
        this.i++;
        continue;
      }
      if (text[this.i] === close) {
        this.i++;
        return;
      }
      this.fail(`"," or "${close}"`);
    }
  }

  private key(): void {
    if (this.text[this.i] !== '"') this.fail('a key in double quotes');
    this.string();
    this.ws();
    if (this.text[this.i] !== ':') this.fail('":" after the key');
    this.i++;
  }

  private string(): void {
    const { text } = this;
    const start = this.i;
    this.i++; // "
    for (;;) {
      if (this.i >= text.length) throw new Stop(start, 'string is never closed (missing ")');
      const code = text.charCodeAt(this.i);
      if (code === 0x22) {
        this.i++;
        return;
      }
      if (code < 0x20) throw new Stop(this.i, 'line break or control character inside a string (write it as \\n, \\t, ...)');
      if (code === 0x5c) {
        this.escape();
        continue;
      }
      this.i++;
    }
  }

  private escape(): void {
    const { text } = this;
    const esc = text[this.i + 1] ?? '';
    if ('"\\/bfnrt'.includes(esc) && esc !== '') this.i += 2;
    else if (esc === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(this.i + 2, this.i + 6))) this.i += 6;
    else throw new Stop(this.i, 'invalid escape sequence in a string');
  }

  private number(): void {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.text.slice(this.i, this.i + 400));
    if (m === null || m[0] === '-') this.fail('a number');
    this.i += (m as RegExpExecArray)[0].length;
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text.charCodeAt(k) === 0x0a) {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
