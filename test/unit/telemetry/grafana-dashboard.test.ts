// The chart's Grafana dashboard against what Canopy really exposes: every
// metric and label its queries name must appear in a scrape of the Prometheus
// endpoint once each instrument has recorded, and the chart must ship it as a
// sidecar-labelled ConfigMap only when asked. The chart half needs helm and
// kubernetes-validate (`bash helm/check-tools.sh`), like the chart tests.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ATTR_ATTEMPT,
  ATTR_INDEX,
  ATTR_OUTCOME,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_SHARD,
} from '../../../src/telemetry/attributes';
import { canopyInstruments, inflightQueriesOf, observeEtcdSession, observeEtcdWatch, observeIndexVersions, observeSearchQueueDepth } from '../../../src/telemetry/instruments';
import { startTelemetry, type Telemetry } from '../../../src/telemetry/telemetry';
import { CHART_DIR, findHelm, renderChart } from '../../support/helm/chart';
import type { Manifest } from '../../support/helm/manifests';
import { type Sample, scrape } from '../../support/prometheus-text';

interface Target {
  readonly expr: string;
  readonly datasource: { readonly uid: string };
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { readonly uid: string };
  readonly targets?: readonly Target[];
}
interface Dashboard {
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: ReadonlyArray<{ readonly name: string; readonly definition?: string }> };
}

const DASHBOARD_FILE = path.join(CHART_DIR, 'dashboards', 'canopy.json');
const dashboardText = readFileSync(DASHBOARD_FILE, 'utf8');
const dashboard = JSON.parse(dashboardText) as Dashboard;
const queries = [
  ...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)),
  ...dashboard.templating.list.flatMap((variable) => (variable.definition === undefined ? [] : [variable.definition])),
];
/** Labels Prometheus adds itself (`le` on histogram buckets, `instance`/`job` per target). */
const PROMETHEUS_LABELS = ['le', 'instance', 'job'];

/** Metric names: `canopy_*`, `process_*` and `nodejs_*` tokens once grouping lists, selectors and label_values' label are cut out. */
function metricNames(query: string): string[] {
  const metricsOnly = query
    .replace(/\bby \([^)]*\)/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/(label_values\([a-z_]+),\s*[a-z_]+\)/g, '$1)');
  return [...new Set([...metricsOnly.matchAll(/\b(?:canopy|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]))];
}

function labelNames(query: string): string[] {
  const grouped = [...query.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((label) => label.trim()));
  const matched = [...query.matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1]!);
  const valuesOf = [...query.matchAll(/label_values\([a-z_]+,\s*([a-z_]+)\)/g)].map((m) => m[1]!);
  return [...new Set([...grouped, ...matched, ...valuesOf])];
}

describe('Grafana dashboard queries', () => {
  let telemetry: Telemetry;
  let samples: Sample[];

  beforeAll(async () => {
    telemetry = await startTelemetry({ serviceName: 'canopy-router', metricsListen: '127.0.0.1:0' });
    const instruments = canopyInstruments();
    const method = { [ATTR_RPC_METHOD]: 'Search', [ATTR_INDEX]: 'items' };
    instruments.rpcServerDuration.record(0.001, { ...method, [ATTR_RPC_GRPC_STATUS_CODE]: 0 });
    const shard = { [ATTR_INDEX]: 'items', [ATTR_SHARD]: 0 };
    instruments.shardCallDuration.record(0.001, { ...shard, [ATTR_OUTCOME]: 'ok', [ATTR_ATTEMPT]: 'first' });
    instruments.retries.add(1, shard);
    instruments.hedges.add(1, shard);
    instruments.partialAnswers.add(1, method);
    inflightQueriesOf('Search').count += 1;
    observeSearchQueueDepth(() => 0);
    observeIndexVersions(() => [{ index: 'items', version: 'v1', shard: 0, state: 'ready', items: 10, loadDurationSeconds: 0.005 }]);
    observeEtcdSession(() => 'registered');
    observeEtcdWatch(() => 'watching');
    samples = await scrape(telemetry.metricsAddress!.port);
  });
  afterAll(() => telemetry.shutdown());

  it('has panels with unique ids, all on the datasource variable', () => {
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
    const dataPanels = dashboard.panels.filter((panel) => panel.type !== 'row');
    expect(dataPanels.length).toBeGreaterThanOrEqual(12);
    for (const panel of dataPanels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.datasource.uid).toBe('${datasource}');
    }
  });

  it('names only metrics the scrape endpoint exposes, and all of them', () => {
    const exposed = new Set(samples.map((sample) => sample.name));
    const named = [...new Set(queries.flatMap(metricNames))];
    expect(named.filter((name) => !exposed.has(name))).toEqual([]);
    // And every Canopy instrument has a panel.
    const instrument = (name: string): string => name.replace(/_(bucket|count|sum|total)$/, '');
    const instruments = (names: Iterable<string>): string[] => [...new Set([...names].filter((n) => n.startsWith('canopy_')).map(instrument))].sort();
    expect(instruments(named)).toEqual(instruments(exposed));
    expect(instruments(named)).toHaveLength(13);
  });

  it.each(queries)('groups and filters by labels those metrics carry: %s', (query) => {
    const names = metricNames(query);
    const carried = new Set([...PROMETHEUS_LABELS, ...samples.filter((s) => names.includes(s.name)).flatMap((s) => Object.keys(s.labels))]);
    expect(labelNames(query).filter((label) => !carried.has(label))).toEqual([]);
  });
});

describe('Grafana dashboard ConfigMap in the chart', () => {
  const helm = findHelm();

  function configMaps(set: string[]): Manifest[] {
    const render = renderChart(helm, { set });
    expect(render.problems).toEqual([]);
    return render.manifests.filter((manifest) => manifest.kind === 'ConfigMap');
  }

  it('is not rendered by default', () => {
    expect(configMaps([])).toEqual([]);
  });

  it('carries the sidecar label and the dashboard file when enabled', () => {
    const [configMap, ...others] = configMaps(['grafanaDashboard.enabled=true', 'grafanaDashboard.annotations.grafana_folder=Search']);
    expect(others).toEqual([]);
    expect(configMap!.metadata.name).toBe('rel-canopy-dashboard');
    expect(configMap!.metadata.labels).toMatchObject({ grafana_dashboard: '1', 'app.kubernetes.io/component': 'dashboard' });
    expect(configMap!.metadata.annotations).toEqual({ grafana_folder: 'Search' });
    const data = (configMap as unknown as { data: Record<string, string> }).data;
    expect(Object.keys(data)).toEqual(['canopy.json']);
    expect(JSON.parse(data['canopy.json']!)).toEqual(dashboard);
  });
});
