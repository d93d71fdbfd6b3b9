// A client of HAProxy's runtime API (the worker's admin socket) and of its master CLI: one
// command per connection over a unix socket. The command goes out with the write side
// half-closed, HAProxy answers and closes (the master CLI only answers once the client's side
// is shut), so an answer is everything read until the close. Bounded by a timeout; failures
// become SlipwayErrors: ROUTER_UNAVAILABLE when HAProxy cannot be reached or does not answer
// in time, ROUTER_COMMAND_FAILED when it answers with a refusal.
import { connect } from 'node:net';
import { SlipwayError } from '../../shared/errors.js';

/** A runtime API command is answered in well under a millisecond; a worker busy with a reload's
 * config parse or thousands of connections takes longer. 2 s is far past both and still short
 * enough for settle()'s bound to allow a few retries. */
export const RUNTIME_API_TIMEOUT_MS = 2_000;

/** What HAProxy 2.6 answers when it refuses a `show` (cli.c, the proxy, map and server CLIs). */
const REFUSAL = /^(Unknown command|No such|Can't find|Unknown map|Permission denied|Missing|Require|Unable|Invalid|'[^']*' only supports)/;

export class RuntimeApi {
  constructor(readonly socketPath: string, private readonly timeoutMs = RUNTIME_API_TIMEOUT_MS) {}

  /** Sends one command and resolves with HAProxy's answer, whatever it says. */
  send(command: string): Promise<string> {
    // `;` separates commands on one line, a newline ends one: neither may come from a name.
    if (/[;\n\r]/.test(command)) return Promise.reject(new SlipwayError('INTERNAL', `unsafe runtime API command: ${JSON.stringify(command)}`));
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (err: SlipwayError | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else resolve(Buffer.concat(chunks).toString('utf8'));
      };
      const timer = setTimeout(() => finish(new SlipwayError('ROUTER_UNAVAILABLE', `HAProxy did not answer "${command}" on ${this.socketPath} within ${this.timeoutMs} ms`)), this.timeoutMs);
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => finish(new SlipwayError('ROUTER_UNAVAILABLE', `HAProxy's socket ${this.socketPath}: ${err.code ?? err.message}`, { cause: err })));
      socket.on('close', () => finish(undefined));
      socket.end(`${command}\n`);
    });
  }

  /** A command that changes something: its answer must match `ok` ('' for silent success). */
  async run(command: string, ok: RegExp | '' = ''): Promise<string> {
    const answer = await this.send(command);
    const text = answer.trim();
    const accepted = ok === '' ? text === '' : ok.test(text);
    if (!accepted) throw refused(command, text);
    return answer;
  }

  /** A `show` command: any answer but a refusal. */
  async show(command: string): Promise<string> {
    const answer = await this.send(command);
    const text = answer.trim();
    if (REFUSAL.test(text)) throw refused(command, text);
    return answer;
  }
}

function refused(command: string, answer: string): SlipwayError {
  const first = answer.split('\n')[0] ?? '';
  return new SlipwayError('ROUTER_COMMAND_FAILED', `HAProxy refused "${command}": ${first || '(no answer)'}`);
}
