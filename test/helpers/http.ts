// A small HTTP client for the end-to-end tests: JSON bodies, a bound on every request, and the
// coordinator's API token on every request (tests that check the refusal pass their own
// authorization header, or none with NO_AUTH).
import { request } from 'node:http';

/** The API token the tests' coordinators take (SLIPWAY_API_TOKEN from spawnBin, apiTokens in
 * a CoordinatorConfig). */
export const TEST_API_TOKEN = 'test-api-token-0123456789abcdef';
export const API_AUTH: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_API_TOKEN}` };
/** Headers that leave the API token out (`http(..., NO_AUTH)`). */
export const NO_AUTH: Readonly<Record<string, string>> = { authorization: '' };

export function http(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const all: Record<string, string> = { 'content-type': 'application/json', ...API_AUTH, ...headers };
    if (all.authorization === '') delete all.authorization;
    const req = request(url, { method, headers: all, timeout: 10_000 }, (res) => {
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
