import { describe, expect, test } from 'vitest';

import { isObjectUrl, joinObjectUrl, parseObjectUrl } from '../../../src/storage/object-url';

describe('object URLs', () => {
  test('split bucket and key, without slashes at either end', () => {
    expect(parseObjectUrl('s3://my-bucket/tracks/v1/')).toEqual({ bucket: 'my-bucket', key: 'tracks/v1' });
    expect(parseObjectUrl('s3://my-bucket')).toEqual({ bucket: 'my-bucket', key: '' });
    expect(joinObjectUrl('s3://my-bucket/tracks/', 'v1', 'manifest.json')).toBe('s3://my-bucket/tracks/v1/manifest.json');
    expect(joinObjectUrl('s3://my-bucket', 'v1')).toBe('s3://my-bucket/v1');
  });

  test('tell object storage from local paths', () => {
    expect(isObjectUrl('s3://b/p')).toBe(true);
    expect(isObjectUrl('/data/s3://x')).toBe(false);
  });

  test('refuse what is not a bucket URL, naming it', () => {
    expect(() => parseObjectUrl('/data/tracks')).toThrow(/"\/data\/tracks" is not an s3:\/\/bucket\/prefix URL/);
    expect(() => parseObjectUrl('s3://Bad_Bucket/x')).toThrow(/bucket "Bad_Bucket" is not a valid bucket name/);
    expect(() => parseObjectUrl('s3://bucket/a/../b')).toThrow(/'\.\.' are not allowed/);
  });
});
