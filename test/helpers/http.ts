// A small HTTP client for the end-to-end tests: JSON bodies, a bound on every request.
import { request } from 'node:http';

export function http(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { 'content-type': 'application/json', ...headers }, timeout: 10_000 }, (res) => {
      let data = '';
      res.on('data', (c: Buffer) => { data += c.toString('utf8'); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout ${method} ${url}`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const getJson = async (url: string, headers: Record<string, string> = {}): Promise<any> => JSON.parse((await http('GET', url, undefined, headers)).body);
