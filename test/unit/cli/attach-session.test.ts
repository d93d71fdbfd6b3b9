// The CLI's leg of an attached run, its pure parts: the exit code a shell sees and the leg's
// WebSocket URL. The session itself runs against a real rendezvous in
// test/unit/agent/dynos/attach-hook.test.ts and end to end in test/integration/e2e/attached-run.test.ts.
import t from 'tap';
import { exitCodeOf, legUrl } from '../../../cli/attach-session.js';

t.test('the exit code: the command\'s, else 128 + the signal\'s number', async (t) => {
  t.equal(exitCodeOf({ code: 0, signal: null, oomKilled: false }), 0);
  t.equal(exitCodeOf({ code: 3, signal: null, oomKilled: false }), 3);
  t.equal(exitCodeOf({ code: null, signal: 'SIGKILL', oomKilled: true }), 137);
  t.equal(exitCodeOf({ code: null, signal: 'SIGTERM', oomKilled: false }), 143);
  t.equal(exitCodeOf({ code: null, signal: 'SIGNOPE', oomKilled: false }), 1, 'an unknown signal is a failure');
});

t.test('the leg URL: the API\'s host with ws:// or wss://', async (t) => {
  t.equal(legUrl('http://127.0.0.1:7700', '/v1/rendezvous/abc'), 'ws://127.0.0.1:7700/v1/rendezvous/abc');
  t.equal(legUrl('https://coordinator.example:7700/', '/v1/rendezvous/abc'), 'wss://coordinator.example:7700/v1/rendezvous/abc');
  t.equal(legUrl('https://coordinator.example/base/', '/v1/rendezvous/abc'), 'wss://coordinator.example/v1/rendezvous/abc', 'the path is the answer\'s');
});
