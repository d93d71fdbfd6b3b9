// Each dyno's resolv.conf (resolv.ts): a loopback stub on the host is out of a dyno's reach.
import t from 'tap';
import { dynoResolvConf } from '../../../../agent/network/resolv.js';

t.test("systemd-resolved's stub on the host: the upstream resolvers, with the host's search line", async (t) => {
  const r = dynoResolvConf({
    host: 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch ec2.internal\n',
    upstream: 'nameserver 10.0.0.2\nnameserver 127.0.0.1\nsearch ec2.internal\n',
  });
  t.same(r.nameservers, ['10.0.0.2']);
  t.equal(r.source, 'systemd-resolved upstream');
  t.match(r.text, /^nameserver 10\.0\.0\.2$/m);
  t.notMatch(r.text, /127\.0\.0/);
  t.match(r.text, /^search ec2\.internal$/m);
  t.match(r.text, /^options edns0 trust-ad$/m);
});

t.test("a host resolver that is not loopback is used as it is; configured ones win", async (t) => {
  t.same(dynoResolvConf({ host: 'nameserver 169.254.169.253\n', upstream: undefined }).nameservers, ['169.254.169.253']);
  const c = dynoResolvConf({ configured: ['1.1.1.1'], host: 'nameserver 169.254.169.253\n', upstream: undefined });
  t.same(c.nameservers, ['1.1.1.1']);
  t.equal(c.source, 'config');
});

t.test('only loopback resolvers and no upstream: no nameserver, said so', async (t) => {
  const r = dynoResolvConf({ host: 'nameserver 127.0.0.53\n', upstream: undefined });
  t.same(r.nameservers, []);
  t.equal(r.source, 'none');
});
