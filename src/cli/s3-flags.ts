// `--s3-endpoint` for every command that reads or writes object storage. The
// rest is the AWS way: credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// AWS_PROFILE and ~/.aws, web identity or an instance role; the region from
// AWS_REGION or the profile.
import type { Command } from 'commander';

import type { ObjectStore } from '../storage/object-store';

export interface S3Flags {
  readonly s3Endpoint?: string;
}

export function addS3Flags(command: Command): Command {
  return command.option(
    '--s3-endpoint <url>',
    'an S3-compatible server (MinIO, Ceph...) for s3:// locations; default $AWS_ENDPOINT_URL_S3 or AWS itself',
  );
}

/**
 * One store per process, made on first use: commands that never meet an
 * s3:// location never load the AWS SDK (~150 ms of start-up) nor make its client.
 */
export function lazyObjectStore(flags: S3Flags): { get: () => Promise<ObjectStore>; close: () => void } {
  let store: Promise<ObjectStore> | undefined;
  const create = async (): Promise<ObjectStore> => {
    const { ObjectStore } = await import('../storage/object-store.js');
    return ObjectStore.create(flags.s3Endpoint === undefined ? {} : { endpoint: flags.s3Endpoint });
  };
  return {
    get: () => (store ??= create()),
    close: () => void store?.then((made) => made.close(), () => undefined),
  };
}
