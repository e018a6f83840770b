// A TCP proxy on loopback that can cut connections midway: while `cutAfterBytes`
// is set, each connection is destroyed once that many bytes came back from the
// server, as when a network or an object store fails mid-download.
import net from 'node:net';

export class CuttingProxy {
  cutAfterBytes: number | undefined;
  port = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.relay(client));
  }

  static async start(targetPort: number): Promise<CuttingProxy> {
    const proxy = new CuttingProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    let returned = 0;
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      returned += chunk.length;
      const cut = this.cutAfterBytes;
      if (cut !== undefined && returned > cut) {
        client.write(chunk.subarray(0, Math.max(0, chunk.length - (returned - cut))));
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
    client.on('close', () => upstream.destroy());
  }
}
