#!/usr/bin/env node
/**
 * Example command handler for ckpt: counts the rows of one CSV file.
 *
 *   node scripts/example-handler.mjs FILE.csv
 *
 * The file is streamed (never read whole), so a multi-gigabyte file costs a few kilobytes of
 * memory. The first record is the header. Every later record counts in `total`; a record is
 * `filtered` when it is empty or malformed (a column count different from the header's, a
 * stray quote, a quoted field never closed); `persisted` = total - filtered.
 * Fields follow RFC 4180: quoted fields may hold commas, doubled quotes and line breaks.
 *
 * The contract with ckpt (src/run/command-handler.ts, src/run/stats-line.ts):
 * - the LAST line on stdout is exactly {"total":n,"filtered":n,"persisted":n};
 * - exit 0: done;
 * - exit 65 (EX_DATAERR): the file is not UTF-8 text (NUL bytes, invalid UTF-8): retrying cannot
 *   help, so ckpt sends it to `dead` at once;
 * - exit 64 (EX_USAGE): called without a file;
 * - exit 1: anything else (unreadable, vanished, ...): ckpt retries with backoff.
 */
import fs from 'node:fs';

const EX_USAGE = 64;
const EX_DATAERR = 65;

class DataError extends Error {}

/** A streaming RFC 4180 record counter: feed() text in any pieces, then end(). */
function createCsvCounter() {
  let headerFields = -1;
  let total = 0;
  let filtered = 0;
  // State of the record being read.
  let fields = 1;
  let length = 0; // characters in the record, not counting \r
  let inQuotes = false;
  let afterClosingQuote = false;
  let atFieldStart = true;
  let malformed = false;

  const endRecord = () => {
    if (inQuotes) malformed = true;
    if (headerFields < 0) {
      headerFields = fields;
    } else {
      total++;
      if (length === 0 || malformed || fields !== headerFields) filtered++;
    }
    fields = 1;
    length = 0;
    inQuotes = false;
    afterClosingQuote = false;
    atFieldStart = true;
    malformed = false;
  };

  return {
    feed(text) {
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (inQuotes) {
          if (c === 0x22) {
            inQuotes = false;
            afterClosingQuote = true;
          }
          length++;
          continue;
        }
        switch (c) {
          case 0x22: // "
            if (afterClosingQuote) {
              inQuotes = true; // "" inside a quoted field: an escaped quote
              afterClosingQuote = false;
            } else if (atFieldStart) {
              inQuotes = true;
            } else {
              malformed = true; // a quote in the middle of an unquoted field
            }
            atFieldStart = false;
            length++;
            break;
          case 0x2c: // ,
            fields++;
            atFieldStart = true;
            afterClosingQuote = false;
            length++;
            break;
          case 0x0a: // \n
            endRecord();
            break;
          case 0x0d: // \r of \r\n line ends: not data
            break;
          default:
            if (afterClosingQuote) malformed = true; // "ab"c
            atFieldStart = false;
            length++;
        }
      }
    },
    /** The totals; a last record without a final newline still counts. */
    end() {
      if (length > 0 || inQuotes) endRecord();
      return { total, filtered, persisted: total - filtered };
    },
  };
}

async function countFile(file) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const counter = createCsvCounter();
  for await (const chunk of fs.createReadStream(file)) {
    if (chunk.includes(0)) throw new DataError(`${file}: contains NUL bytes: not a text file`);
    let text;
    try {
      text = decoder.decode(chunk, { stream: true });
    } catch {
      throw new DataError(`${file}: not valid UTF-8 text`);
    }
    counter.feed(text);
  }
  try {
    counter.feed(decoder.decode());
  } catch {
    throw new DataError(`${file}: ends in the middle of a UTF-8 character`);
  }
  return counter.end();
}

async function main() {
  const file = process.argv[2];
  if (file === undefined || file === '') {
    process.stderr.write('usage: example-handler.mjs FILE.csv\n');
    return EX_USAGE;
  }
  try {
    const stats = await countFile(file);
    process.stdout.write(`${JSON.stringify(stats)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`example-handler: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof DataError ? EX_DATAERR : 1;
  }
}

// exitCode rather than process.exit(): stdout is written out before the process ends.
process.exitCode = await main();
