// A log line as Heroku's Logplex frames it for a drain: RFC 5424 syslog with Logplex's fields,
// octet-counted (RFC 6587), the same frame for an HTTPS drain's body and a syslog+tls stream:
//
//   <len> <PRI>1 TIMESTAMP host SOURCE PROC - MESSAGE
//   83 <190>1 2026-12-03T10:00:00.000Z host app web.1 - GET / 200
//
// HOSTNAME is the literal `host` and there is no MSGID or structured data (`-`), as Logplex
// sends them; SOURCE is `app` (what the dyno wrote) or `slipway` (what the agent said about
// it), PROC the dyno's name. PRI: app lines local7.info (190), slipway's and the drain's own
// notices (L10) syslog.notice (45), as Heroku's router and platform lines use facility 5.
// `len` counts the bytes after its space, so a receiver reads frames without a delimiter.

const LINE = /^(\S+) ([a-z]+)\[([^\]]+)\]: ([\s\S]*)$/;

export const PRI_APP = 190;
export const PRI_PLATFORM = 45;

/** The frame of one shipped line (`TIMESTAMP source[dyno]: text`, shared/protocol.ts LogBatch);
 * a line of another form goes out whole as the app's message. */
export function logplexFrame(line: string, now: () => Date = () => new Date()): string {
  const m = LINE.exec(line);
  const [time, source, proc, message] = m ? [m[1]!, m[2]!, m[3]!, m[4]!] : [now().toISOString(), 'app', '-', line];
  return octetCounted(`<${source === 'app' ? PRI_APP : PRI_PLATFORM}>1 ${time} host ${source} ${proc} - ${message}`);
}

/** The drain's own notice that it lost lines (Logplex's L10), as a frame. */
export function overflowFrame(dropped: number, since: Date, now: Date = new Date()): string {
  return octetCounted(`<${PRI_PLATFORM}>1 ${now.toISOString()} host slipway logplex - Error L10 (output buffer overflow): ${dropped} messages dropped since ${since.toISOString()}.`);
}

export function octetCounted(syslogMessage: string): string {
  return `${Buffer.byteLength(syslogMessage, 'utf8')} ${syslogMessage}`;
}

/** Splits an octet-counted stream into its messages; the rest that is not whole yet is kept
 * (receivers in tests, and any reader of a drain's body). */
export function readOctetCounted(buf: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    const sp = buf.indexOf(0x20, at);
    if (sp < 0) break;
    const len = Number(buf.subarray(at, sp).toString('ascii'));
    if (!Number.isInteger(len) || len < 0) throw new Error(`not an octet count at byte ${at}`);
    if (buf.length < sp + 1 + len) break;
    messages.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
    at = sp + 1 + len;
  }
  return { messages, rest: buf.subarray(at) };
}
