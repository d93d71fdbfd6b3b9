import t from 'tap';
import { decodeCoordinatorMessage, decodeAgentMessage, MAX_FRAME_BYTES } from '../../../shared/protocol.js';

const spec = {
  id: 'app1-web-1-abc', app: 'app1', type: 'web', name: 'web.1',
  size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'httpd -f -p $PORT', env: { GREETING: 'hi' },
  slug: { url: 'http://127.0.0.1:1/slug.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
};

t.test('a valid start_dyno decodes', async (t) => {
  const d = decodeCoordinatorMessage(JSON.stringify({ type: 'start_dyno', id: 'c1', dyno: spec }));
  t.equal(d.ok, true);
});

t.test('invalid JSON gets PROTOCOL_INVALID_JSON', async (t) => {
  const d = decodeCoordinatorMessage('{nope');
  t.match(d, { ok: false, error: { code: 'PROTOCOL_INVALID_JSON' } });
});

t.test('unknown type gets PROTOCOL_UNKNOWN_TYPE with the command id as ref', async (t) => {
  const d = decodeCoordinatorMessage(JSON.stringify({ type: 'format_disk', id: 'c9' }));
  t.match(d, { ok: false, error: { code: 'PROTOCOL_UNKNOWN_TYPE', ref: 'c9' } });
});

t.test('a message of the wrong direction is unknown', async (t) => {
  const d = decodeAgentMessage(JSON.stringify({ type: 'start_dyno', id: 'c1', dyno: spec }));
  t.match(d, { ok: false, error: { code: 'PROTOCOL_UNKNOWN_TYPE' } });
});

t.test('schema violations name the path', async (t) => {
  const bad = { ...spec, id: '../etc' };
  const d = decodeCoordinatorMessage(JSON.stringify({ type: 'start_dyno', id: 'c2', dyno: bad }));
  t.match(d, { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', ref: 'c2', message: /\/dyno\/id/ } });
  const extra = decodeCoordinatorMessage(JSON.stringify({ type: 'ack', seq: 1, admin: true }));
  t.match(extra, { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } });
  const env = decodeCoordinatorMessage(JSON.stringify({ type: 'start_dyno', id: 'c3', dyno: { ...spec, env: { 'A=B': 'x' } } }));
  t.match(env, { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } });
});

t.test('oversize frames are refused before parsing', async (t) => {
  const d = decodeCoordinatorMessage('x'.repeat(MAX_FRAME_BYTES + 1));
  t.match(d, { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /exceeds/ } });
});

t.test('timestamps must be RFC 3339', async (t) => {
  const status = { id: 'd1', app: 'app1', type: 'web', name: 'web.1', state: 'up', memoryMb: 512, since: 'yesterday' };
  const ev = { type: 'event', seq: 1, at: new Date().toISOString(), event: { kind: 'dyno_state', from: 'starting', dyno: status } };
  t.match(decodeAgentMessage(JSON.stringify(ev)), { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } });
  status.since = new Date().toISOString();
  t.equal(decodeAgentMessage(JSON.stringify(ev)).ok, true);
});

t.test('the emitted JSON Schema covers every message type of both directions', async (t) => {
  const { protocolJsonSchema } = await import('../../../shared/protocol.js');
  const doc = JSON.parse(JSON.stringify(protocolJsonSchema())) as Record<string, Record<string, { required?: string[] }>>;
  t.same(Object.keys(doc.agentToCoordinator!).sort(), ['capacity', 'error', 'event', 'hello', 'logs', 'result']);
  t.same(Object.keys(doc.coordinatorToAgent!).sort(), ['ack', 'drain', 'error', 'hint', 'prefetch_slug', 'start_dyno', 'stop_dyno', 'undrain', 'welcome']);
  t.ok(doc.agentToCoordinator!.hello!.required!.includes('seqEpoch'));
  t.ok(doc.coordinatorToAgent!.start_dyno!.required!.includes('dyno'));
});

