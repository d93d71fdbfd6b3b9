// The parsers, on answers captured from HAProxy 2.6.12 (Debian 12).
import t from 'tap';
import { draining, inMaintenance, parseBackends, parseMap, parseProc, parseServersState, parseStatSessions } from '../../../../coordinator/haproxy/state.js';

const SERVERS_STATE = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 app-shop 1 d1 127.0.0.1 2 8 1 1 0 1 0 2 0 0 0 0 - 18101 - 0 0 - - 0
3 app-shop 2 d6 ::1 2 0 1 1 1 1 0 2 0 0 0 0 - 18106 - 0 0 - - 0
3 app-shop 3 d7 ::1 0 1 1 1 0 1 0 0 0 0 0 0 - 18107 - 0 0 - - 0

`;

t.test('show servers state', async (t) => {
  const servers = parseServersState(SERVERS_STATE);
  t.same(servers.map((s) => [s.backend, s.name, s.addr, s.port, s.opState, s.adminState]), [
    ['app-shop', 'd1', '127.0.0.1', 18101, 2, 8], ['app-shop', 'd6', '::1', 18106, 2, 0], ['app-shop', 'd7', '::1', 18107, 0, 1],
  ]);
  t.same(servers.map((s) => [draining(s), inMaintenance(s)]), [[true, false], [false, false], [false, true]]);
  t.same(parseServersState('1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port\n\n'), [], 'a backend without servers');
  t.same(parseServersState(''), []);
  t.throws(() => parseServersState('2\n# x\n'), /format/);
});

t.test('show stat: sessions and queue of each server', async (t) => {
  const csv = '# pxname,svname,qcur,qmax,scur,smax,slim,stot\n'
    + 'app-shop,d1,0,0,3,5,,20\napp-shop,d2,1,0,0,0,,0\napp-shop,BACKEND,0,0,3,5,,20\nslipway_router,FRONTEND,,,1,2,9980,30\n';
  t.same([...parseStatSessions(csv)], [['app-shop/d1', { current: 3, queued: 0 }], ['app-shop/d2', { current: 0, queued: 1 }]]);
  t.throws(() => parseStatSessions('# pxname,svname\n'), /scur/);
});

t.test('show map keeps every value of a key', async (t) => {
  const map = parseMap('0x562cabad4b70 shop.localhost app-shop\n0x7f393804cb00 x.localhost app-shop\n0x562cabad87f0 x.localhost app-y\n\n');
  t.same([...map], [['shop.localhost', ['app-shop']], ['x.localhost', ['app-shop', 'app-y']]]);
});

t.test('show backend', async (t) => {
  t.same(parseBackends('# name\napp_shop\napp_blog\n\n'), ['app_shop', 'app_blog']);
});

t.test('show proc: master, current and old workers', async (t) => {
  const text = `#<PID>          <type>          <reloads>       <uptime>        <version>
27513           master          1 [failed: 0]   0d00h00m16s     2.6.12-1+deb12u4
# workers
27653           worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
27518           worker          1               0d00h00m16s     2.6.12-1+deb12u4
# programs

`;
  t.same(parseProc(text), { masterPid: 27513, reloads: 1, failedReloads: 0, workers: [27653], oldWorkers: [27518] });
});
