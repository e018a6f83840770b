import { describe, expect, it } from 'vitest';

import { advertisedAddress, isWildcardAddress } from '../../../src/cli/advertise-address';

describe('advertisedAddress', () => {
  it('keeps IPv4, names and bracketed IPv6 as given', () => {
    expect(advertisedAddress('10.0.0.7:7000')).toBe('10.0.0.7:7000');
    expect(advertisedAddress('shard-0.canopy:7000')).toBe('shard-0.canopy:7000');
    expect(advertisedAddress('[fd00::7]:7000')).toBe('[fd00::7]:7000');
  });

  it('brackets a bare IPv6 literal, as $(POD_IP):PORT expands on an IPv6 pod', () => {
    expect(advertisedAddress('fd00::7:7000')).toBe('[fd00::7]:7000');
    expect(advertisedAddress('2001:db8::1:8080')).toBe('[2001:db8::1]:8080');
    expect(advertisedAddress(':::7000')).toBe('[::]:7000');
  });

  it('refuses what is not HOST:PORT, naming the flag', () => {
    for (const bad of ['10.0.0.7', ':7000', '10.0.0.7:', '10.0.0.7:http', '10.0.0.7:70000']) {
      expect(() => advertisedAddress(bad), bad).toThrow(/--advertise .* must look like HOST:PORT/);
    }
  });
});

describe('isWildcardAddress', () => {
  it('is true for every-interface addresses only', () => {
    expect(isWildcardAddress('0.0.0.0:7000')).toBe(true);
    expect(isWildcardAddress(advertisedAddress(':::7000'))).toBe(true);
    expect(isWildcardAddress('10.0.0.7:7000')).toBe(false);
    expect(isWildcardAddress('[fd00::7]:7000')).toBe(false);
  });
});
