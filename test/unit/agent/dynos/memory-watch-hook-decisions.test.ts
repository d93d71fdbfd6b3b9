// The memory watch's decisions (memory-watch-hook.ts): the warning before R15 and the R15 kill
// are recorded with the numbers they were taken on. Fake driver samples every 5 s of fake time,
// as in memory-watch-hook-warning.test.ts.
import t from 'tap';
import { DecisionLog } from '../../../../agent/diagnostics/decisions.js';
import { memoryWatchSettings } from '../../../../agent/dynos/memory-watch-hook.js';
import { dynoSetup, MB, workerSpec } from '../../../helpers/fake-dyno.js';

t.test('a leak: a memory_warning decision with the projection, then a kill decision with the R15 sample', async (t) => {
  const s = dynoSetup(t);
  const decisions = new DecisionLog({ now: () => s.clock.now() });
  const d = s.make(workerSpec(), { decisions, memory: memoryWatchSettings({ r15Multiple: 2, r14IntervalMs: 60_000, warnHorizonMs: 600_000 }) });
  const sample = async (bytes: number) => {
    s.clock.tick(5_000);
    s.driver.memory = { workingSetBytes: bytes, swapBytes: 0 };
    await d.sampleMemory();
  };
  d.begin();
  await s.until('up');
  for (let i = 0; i <= 170; i++) await sample(300 * MB + 2.5 * MB * i);
  const [warning] = decisions.list({ dyno: 'worker.1' });
  t.match(warning, {
    kind: 'memory_warning', dynoId: 'app1-worker-1-abc', app: 'app1',
    message: /^Memory projected to reach the R15 limit in ~10 min: 725 MB of 1024 MB, growing 512 KiB\/s$/,
    data: { totalBytes: 725 * MB, limitBytes: 1024 * MB, slopeBytesPerSec: 0.5 * MB, horizonMs: 600_000, pressureSome10: null },
  });
  t.ok(Math.abs((warning!.data!.projectedMs as number) - 598_000) <= 1);
  await sample(1030 * MB);
  await s.until('crashed');
  const kill = decisions.list({ dyno: 'worker.1' }).find((x) => x.kind === 'kill');
  t.match(kill, {
    message: 'R15: 1030 MB (working set + swap) over the 1024 MB line (512 MB quota); SIGKILL',
    data: { cause: 'R15', by: 'agent', code: 'DYNO_MEMORY_EXCEEDED', totalBytes: 1030 * MB, quotaBytes: 512 * MB, limitBytes: 1024 * MB },
  });
  t.equal(decisions.list().filter((x) => x.kind === 'kill').length, 1, 'one kill, once');
  await d.stop(1000);
});
