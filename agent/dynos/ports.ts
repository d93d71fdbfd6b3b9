// Hands out host ports for web dynos from a configured range. Dynos share the host's
// network namespace for now, so a port is also checked free with a real bind before it is
// handed out (another service on the host may hold it).
import { createServer } from 'node:net';
import { SlipwayError } from '../../shared/errors.js';

export class PortAllocator {
  private readonly used = new Set<number>();
  private next: number;

  constructor(private readonly min: number, private readonly max: number, private readonly bindHost = '0.0.0.0') {
    if (!(min > 0 && max >= min && max <= 65535)) throw new SlipwayError('CONFIG_INVALID', `bad port range ${min}-${max}`);
    this.next = min;
  }

  async reserve(): Promise<number> {
    const size = this.max - this.min + 1;
    for (let i = 0; i < size; i++) {
      const port = this.next;
      this.next = port >= this.max ? this.min : port + 1;
      if (this.used.has(port)) continue;
      this.used.add(port);
      if (await canBind(port, this.bindHost)) return port;
      this.used.delete(port);
    }
    throw new SlipwayError('NO_FREE_PORT', `no free port in ${this.min}-${this.max}`);
  }

  /** Marks a port as taken without probing (a dyno that already holds it). */
  claim(port: number): void {
    this.used.add(port);
  }

  release(port: number): void {
    this.used.delete(port);
  }

  get inUse(): number {
    return this.used.size;
  }
}

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
