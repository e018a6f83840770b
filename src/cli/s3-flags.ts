// `--s3-endpoint` for every command that reads or writes object storage. The
// rest is the AWS way: credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// AWS_PROFILE and ~/.aws, web identity or an instance role; the region from
// AWS_REGION or the profile.
import type { Command } from 'commander';

import { ObjectStore } from '../storage/object-store';

export interface S3Flags {
  readonly s3Endpoint?: string;
}

export function addS3Flags(command: Command): Command {
  return command.option(
    '--s3-endpoint <url>',
    'an S3-compatible server (MinIO, Ceph...) for s3:// locations; default $AWS_ENDPOINT_URL_S3 or AWS itself',
  );
}

/** One store per process, made on first use: commands that never meet an s3:// location never load the SDK's clients. */
export function lazyObjectStore(flags: S3Flags): { get: () => ObjectStore; close: () => void } {
  let store: ObjectStore | undefined;
  return {
    get: () => (store ??= ObjectStore.create(flags.s3Endpoint === undefined ? {} : { endpoint: flags.s3Endpoint })),
    close: () => store?.close(),
  };
}
