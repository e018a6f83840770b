// The Prometheus scrape endpoint: GET /metrics renders the exporter's current
// collection in the Prometheus text format, with the declared empty histogram
// series added (zero-series.ts). Canopy owns the HTTP server (the exporter's
// built-in one is not started) so that port 0 works, a bind error rejects
// `start()` instead of surfacing later, and `close()` is awaited.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';

import { METER_NAME } from './instruments';
import type { ListenAddress } from './telemetry-config';
import { withZeroHistograms } from './zero-series';

export const METRICS_PATH = '/metrics';

export class MetricsEndpoint {
  private constructor(
    private readonly server: http.Server,
    /** The bound address (the real port when 0 was asked for). */
    readonly address: ListenAddress,
  ) {}

  static start(listen: ListenAddress, exporter: PrometheusExporter, serializer: PrometheusSerializer): Promise<MetricsEndpoint> {
    const server = http.createServer((request, response) => {
      const path = (request.url ?? '').split('?', 1)[0];
      if (request.method === 'GET' && path === METRICS_PATH) {
        void render(exporter, serializer).then(
          (text) => {
            response.setHeader('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
            response.end(text);
          },
          (err: unknown) => {
            response.statusCode = 500;
            response.end(`# collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
          },
        );
        return;
      }
      response.statusCode = 404;
      response.end(`only GET ${METRICS_PATH} is served here\n`);
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`--metrics-listen: cannot listen on ${listen.host}:${listen.port}: ${err.message}`)));
      server.listen(listen.port, listen.host, () => {
        // A scrape endpoint must not keep a stopping process alive.
        server.unref();
        const bound = server.address() as AddressInfo;
        resolve(new MetricsEndpoint(server, { host: listen.host, port: bound.port }));
      });
    });
  }

  /** Stops accepting scrapes and closes idle keep-alive connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }
}

async function render(exporter: PrometheusExporter, serializer: PrometheusSerializer): Promise<string> {
  const { resourceMetrics } = await exporter.collect();
  return serializer.serialize(withZeroHistograms(resourceMetrics, METER_NAME));
}
