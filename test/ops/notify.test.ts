/**
 * systemd readiness through the real systemd-notify, to a real notification socket (a unix
 * datagram socket served by a small python3 receiver standing in for PID 1).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { afterEach, describe, expect, it } from 'vitest';
import { notifyReady, notifyStopping } from '../../src/ops/notify.js';
import { cleanupTmpDirs, tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const available = spawnSync('systemd-notify', ['--version']).status === 0 && spawnSync('python3', ['--version']).status === 0;

// Receives datagrams, closes any passed descriptors (systemd-notify's barrier waits for that),
// and prints each message as one JSON line.
const RECEIVER = `
import array, json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("bound"), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps(msg.decode()), flush=True)
`;

const receivers: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const r of receivers.splice(0)) r.kill('SIGKILL');
  cleanupTmpDirs();
});

function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', format: 'json', destination: new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString()) as Record<string, unknown>), cb()) }) });
  return { logger, lines };
}

async function receiver(): Promise<{ socket: string; messages: () => string[] }> {
  const dir = tmpDir('ckpt-notify-');
  const socket = path.join(dir, 'notify.sock');
  fs.writeFileSync(path.join(dir, 'recv.py'), RECEIVER);
  const child = spawn('python3', [path.join(dir, 'recv.py'), socket]);
  receivers.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const messages = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as string);
  await waitFor(() => messages().includes('bound'), { message: 'python3 receiver bound' });
  return { socket, messages: () => messages().filter((m) => m !== 'bound') };
}

describe.skipIf(!available)('notifyReady / notifyStopping', () => {
  it('sends READY=1 (with a status) and STOPPING=1 to $NOTIFY_SOCKET', async () => {
    const r = await receiver();
    const { logger } = logCapture();
    const env = { ...process.env, NOTIFY_SOCKET: r.socket };
    expect(await notifyReady(logger, 'watching 2 folders', env)).toBe(true);
    expect(await notifyStopping(logger, 'draining 3 handlers', env)).toBe(true);
    await waitFor(() => r.messages().length >= 2);
    const sent = r.messages().filter((m) => !m.startsWith('BARRIER'));
    expect(sent).toEqual(['READY=1\nSTATUS=watching 2 folders', 'STOPPING=1\nSTATUS=draining 3 handlers']);
  });
});

describe('notify outside systemd and on failure', () => {
  it('does nothing without NOTIFY_SOCKET', async () => {
    const { logger, lines } = logCapture();
    expect(await notifyReady(logger, undefined, {})).toBe(false);
    expect(lines).toHaveLength(0);
  });

  it('never throws: a socket nobody listens on, or no systemd-notify on PATH, is a warning', async () => {
    const { logger, lines } = logCapture();
    const missing = path.join(tmpDir(), 'nobody.sock');
    expect(await notifyReady(logger, undefined, { ...process.env, NOTIFY_SOCKET: missing })).toBe(false);
    expect(await notifyReady(logger, undefined, { NOTIFY_SOCKET: missing, PATH: tmpDir() })).toBe(false);
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(2);
  });
});
