// Where an object lives: `s3://bucket/key`. Version folders in object storage
// are key prefixes (`s3://bucket/tracks/20261126T140102Z`), so a folder URL
// and a file URL are the same shape; `join` appends path segments.

export const S3_SCHEME = 's3://';

export interface ObjectUrl {
  readonly bucket: string;
  /** The key, without a leading or trailing '/'; '' for the bucket itself. */
  readonly key: string;
}

/** Whether `location` names object storage rather than a local path. */
export function isObjectUrl(location: string): boolean {
  return location.startsWith(S3_SCHEME);
}

/** Parses `s3://bucket[/key]`; throws naming the URL when it is not one. */
export function parseObjectUrl(url: string): ObjectUrl {
  if (!isObjectUrl(url)) throw new RangeError(`${JSON.stringify(url)} is not an s3://bucket/prefix URL`);
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  // S3's own bucket naming rules, loosely: what a URL can carry without escaping.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new RangeError(`${JSON.stringify(url)}: bucket ${JSON.stringify(bucket)} is not a valid bucket name`);
  }
  const key = slash === -1 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  if (key.split('/').some((part) => part === '.' || part === '..')) {
    throw new RangeError(`${JSON.stringify(url)}: '.' and '..' are not allowed in a key`);
  }
  return { bucket, key };
}

export function formatObjectUrl({ bucket, key }: ObjectUrl): string {
  return key === '' ? `${S3_SCHEME}${bucket}` : `${S3_SCHEME}${bucket}/${key}`;
}

/** `join('s3://b/p', 'v1', 'manifest.json')` -> `s3://b/p/v1/manifest.json`. */
export function joinObjectUrl(url: string, ...parts: string[]): string {
  const base = parseObjectUrl(url);
  const key = [base.key, ...parts].filter((p) => p.length > 0).join('/');
  return formatObjectUrl({ bucket: base.bucket, key });
}
