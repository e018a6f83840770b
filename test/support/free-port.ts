// Tests pick ports the way `canopy up` does.
import { freeLoopbackPort } from '../../src/cluster/loopback-port';

export { freeLoopbackPort as freePort };

/** `count` free ports, all different: for tests that pick every port before any process binds one. */
export async function distinctPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < count && tries < 10 * count; tries++) ports.add(await freeLoopbackPort());
  return [...ports];
}
