// The dyno subnet's arithmetic (subnet.ts).
import t from 'tap';
import { inSubnet, intToIp, ipToInt, parseSubnet } from '../../../../agent/network/subnet.js';

t.test('the default subnet: the bridge is .0.1, dynos from .0.2 to .255.254', async (t) => {
  const s = parseSubnet('100.72.0.0/16');
  t.equal(s.gateway, '100.72.0.1');
  t.equal(intToIp(s.firstDyno), '100.72.0.2');
  t.equal(intToIp(s.lastDyno), '100.72.255.254');
  t.ok(inSubnet(s, '100.72.3.4'));
  t.notOk(inSubnet(s, '100.72.0.1'), 'the gateway is no dyno address');
  t.notOk(inSubnet(s, '172.31.0.5'), "EC2's default VPC is outside");
});

t.test('round trips and refusals', async (t) => {
  for (const ip of ['0.0.0.0', '10.1.2.3', '255.255.255.255']) t.equal(intToIp(ipToInt(ip)!), ip);
  t.equal(ipToInt('1.2.3'), undefined);
  t.equal(ipToInt('1.2.3.256'), undefined);
  t.throws(() => parseSubnet('100.72.0.0/8'), { code: 'CONFIG_INVALID' }, 'too large');
  t.throws(() => parseSubnet('100.72.0.0/30'), { code: 'CONFIG_INVALID' }, 'too small');
  t.throws(() => parseSubnet('100.72.0.5/24'), { code: 'CONFIG_INVALID', message: /host bits/ });
});
