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
  let i = 0;

  const describe = (at: number): string => {
    if (at >= text.length) return 'the end of the file';
    const ch = text[at] ?? '';
    return JSON.stringify(ch);
  };
  const fail = (what: string, at = i): never => {
    const ch = text[at];
    if (ch === '/' && (text[at + 1] === '/' || text[at + 1] === '*')) throw new Stop(at, 'comments are not allowed in JSON');
    if (ch === "'") throw new Stop(at, 'strings must use double quotes (") in JSON');
    throw new Stop(at, `expected ${what}, found ${describe(at)}`);
  };
  const ws = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text[i] ?? '')) i++;
  };

  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') return object();
    if (ch === '[') return array();
    if (ch === '"') return string();
    if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) return number();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    fail('a value (object, list, string, number, true, false or null)');
  };

  const object = (): void => {
    i++; // {
    ws();
    if (text[i] === '}') {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] === '}') throw new Stop(i, 'trailing comma before "}" is not allowed in JSON');
      if (text[i] !== '"') fail('a key in double quotes');
      string();
      ws();
      if (text[i] !== ':') fail('":" after the key');
      i++;
      value();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return;
      }
      fail('"," or "}"');
    }
  };

  const array = (): void => {
    i++; // [
    ws();
    if (text[i] === ']') {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] === ']') throw new Stop(i, 'trailing comma before "]" is not allowed in JSON');
      value();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return;
      }
      fail('"," or "]"');
    }
  };

  const string = (): void => {
    const start = i;
    i++; // "
    for (;;) {
      if (i >= text.length) throw new Stop(start, 'string is never closed (missing ")');
      const code = text.charCodeAt(i);
      if (code === 0x22) {
        i++;
        return;
      }
      if (code < 0x20) throw new Stop(i, 'line break or control character inside a string (write it as \\n, \\t, ...)');
      if (code === 0x5c) {
        const esc = text[i + 1] ?? '';
        if ('"\\/bfnrt'.includes(esc) && esc !== '') i += 2;
        else if (esc === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
        else throw new Stop(i, 'invalid escape sequence in a string');
        continue;
      }
      i++;
    }
  };

  const number = (): void => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m === null || m[0] === '-') fail('a number');
    i += (m as RegExpExecArray)[0].length;
  };

  try {
    value();
    ws();
    if (i < text.length) fail('the end of the file after the JSON value');
    return null;
  } catch (err) {
    if (!(err instanceof Stop)) return null; // e.g. nesting too deep for the stack: use JSON.parse's message
    return { ...lineColumn(text, err.offset), problem: err.problem };
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
