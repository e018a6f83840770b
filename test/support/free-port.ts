// Tests pick ports the way `canopy up` does.
export { freeLoopbackPort as freePort } from '../../src/cluster/loopback-port';
